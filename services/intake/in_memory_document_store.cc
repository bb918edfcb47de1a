#include "in_memory_document_store.h"

namespace rogatory::intake {

absl::Status InMemoryDocumentStore::CheckQuota(const std::string& request_id,
                                               const DocumentQuota& quota, int64_t adding) const {
  auto used = [](const std::map<std::string, int64_t>& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? int64_t{0} : it->second;
  };
  const int64_t on_request = used(request_bytes_, request_id);
  if (quota.max_request_bytes > 0 && on_request + adding > quota.max_request_bytes) {
    return DocumentQuotaExceeded(true, on_request, quota.max_request_bytes, adding);
  }
  const int64_t by_authority = used(authority_bytes_, quota.authority);
  if (quota.max_authority_bytes > 0 && by_authority + adding > quota.max_authority_bytes) {
    return DocumentQuotaExceeded(false, by_authority, quota.max_authority_bytes, adding);
  }
  return absl::OkStatus();
}

void InMemoryDocumentStore::Stage(const std::string& request_id, const std::string& document_id,
                                  std::string chunk, int64_t staged_bytes,
                                  const DocumentQuota& quota, Done<bool> done) {
  absl::Status quota_status;
  {
    absl::MutexLock lock(&mu_);
    quota_status = CheckQuota(request_id, quota, staged_bytes);
    if (quota_status.ok()) staged_[document_id].push_back(std::move(chunk));
  }
  // Outside the lock: a refusal makes the caller discard what it staged.
  if (!quota_status.ok()) return done(quota_status);
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
                                   const DocumentQuota& quota, Done<MutationOutcome> done) {
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (!staged_.contains(document.id())) {
      refused = absl::AbortedError("the uploaded bytes are gone; upload again");
    } else {
      refused = CheckQuota(document.request_id(), quota, document.size_bytes());
    }
  }
  if (!refused.ok()) return done(refused);
  requests_.Mutate(std::move(change),
                   [this, document, quota, done](absl::StatusOr<MutationOutcome> outcome) {
                     if (outcome.ok() && outcome->kind == MutationOutcome::Kind::kApplied) {
                       absl::MutexLock lock(&mu_);
                       request_bytes_[document.request_id()] += document.size_bytes();
                       authority_bytes_[quota.authority] += document.size_bytes();
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
