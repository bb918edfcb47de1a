#include "in_memory_document_store.h"

namespace rogatory::intake {

void InMemoryDocumentStore::Stage(const std::string&, const std::string& document_id,
                                  std::string chunk, Done<bool> done) {
  {
    absl::MutexLock lock(&mu_);
    staged_[document_id].push_back(std::move(chunk));
  }
  done(true);
}

void InMemoryDocumentStore::Discard(const std::string&, const std::string& document_id,
                                    Done<bool> done) {
  {
    absl::MutexLock lock(&mu_);
    staged_.erase(document_id);
  }
  done(true);
}

void InMemoryDocumentStore::Commit(const v1::Document& document, Mutation change,
                                   Done<MutationOutcome> done) {
  {
    absl::MutexLock lock(&mu_);
    if (!staged_.contains(document.id())) {
      return done(absl::AbortedError("the uploaded bytes are gone; upload again"));
    }
  }
  requests_.Mutate(std::move(change),
                   [this, document, done](absl::StatusOr<MutationOutcome> outcome) {
                     if (outcome.ok() && outcome->kind == MutationOutcome::Kind::kApplied) {
                       absl::MutexLock lock(&mu_);
                       chunks_[document.id()] = std::move(staged_[document.id()]);
                       staged_.erase(document.id());
                       documents_[document.request_id()].push_back(document);
                     }
                     done(std::move(outcome));
                   });
}

void InMemoryDocumentStore::List(const std::string& request_id,
                                 Done<std::vector<v1::Document>> done) {
  std::vector<v1::Document> out;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = documents_.find(request_id); it != documents_.end()) out = it->second;
  }
  done(std::move(out));
}

void InMemoryDocumentStore::ReadChunk(const std::string&, const std::string& document_id,
                                      int64_t index, Done<std::optional<std::string>> done) {
  std::optional<std::string> out;
  {
    absl::MutexLock lock(&mu_);
    auto it = chunks_.find(document_id);
    if (it != chunks_.end() && index >= 0 && index < static_cast<int64_t>(it->second.size())) {
      out = it->second[index];
    }
  }
  done(std::move(out));
}

size_t InMemoryDocumentStore::StagedChunks() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [document, chunks] : staged_) n += chunks.size();
  return n;
}

size_t InMemoryDocumentStore::StagedCount() const {
  absl::MutexLock lock(&mu_);
  return staged_.size();
}

}  // namespace rogatory::intake
