#include "in_memory_document_store.h"

#include "absl/strings/str_cat.h"
#include "rogatory/common/status.h"

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
    uploads_.erase(document_id);
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

namespace {

absl::Status NoSuchUpload() {
  return absl::NotFoundError(
      "no such upload: it expired (upload-idle-timeout passed without a call), was committed "
      "or discarded, or another authority started it; start the upload again");
}

}  // namespace

void InMemoryDocumentStore::StartUpload(const UploadSession& upload, absl::Duration,
                                        Done<bool> done) {
  {
    absl::MutexLock lock(&mu_);
    uploads_[upload.document.id()] = Upload{upload, -1};
  }
  done(true);
}

void InMemoryDocumentStore::StageAt(const std::string& request_id, const std::string& document_id,
                                    const std::string& owner, int64_t offset, std::string chunk,
                                    absl::Duration, const UploadBounds& bounds,
                                    Done<int64_t> done) {
  absl::StatusOr<int64_t> out;
  {
    absl::MutexLock lock(&mu_);
    auto it = uploads_.find(document_id);
    const int64_t adding = static_cast<int64_t>(chunk.size());
    if (it == uploads_.end() || it->second.session.owner != owner) {
      out = NoSuchUpload();
    } else if (const int64_t size = it->second.session.received_bytes; offset != size) {
      std::vector<std::string>& staged = staged_[document_id];
      if (offset == it->second.last_offset && offset + adding == size && !staged.empty() &&
          staged.back() == chunk) {
        out = size;
      } else {
        common::FieldViolations v;
        v.Add("offset", absl::StrCat("must be ", size,
                                     ", the bytes received so far (or the last chunk's offset "
                                     "to resend it unchanged); chunks go in order without gaps "
                                     "or overlaps"));
        out = v.ToStatus();
      }
    } else if (bounds.max_document_bytes > 0 && size + adding > bounds.max_document_bytes) {
      common::FieldViolations v;
      v.Add("chunk", absl::StrCat("the document exceeds the limit of ", bounds.max_document_bytes,
                                  " bytes"));
      out = v.ToStatus();
    } else if (absl::Status q = CheckQuota(request_id, bounds.quota, size + adding); !q.ok()) {
      out = q;
    } else {
      staged_[document_id].push_back(std::move(chunk));
      it->second.session.received_bytes = size + adding;
      it->second.last_offset = offset;
      out = size + adding;
    }
  }
  done(std::move(out));
}

void InMemoryDocumentStore::GetUpload(const std::string&, const std::string& document_id,
                                      const std::string& owner, Done<UploadSession> done) {
  absl::StatusOr<UploadSession> out = NoSuchUpload();
  {
    absl::MutexLock lock(&mu_);
    auto it = uploads_.find(document_id);
    if (it != uploads_.end() && it->second.session.owner == owner) out = it->second.session;
  }
  done(std::move(out));
}

void InMemoryDocumentStore::ClaimUpload(const std::string&, const std::string& document_id,
                                        const std::string& owner, int64_t received_bytes,
                                        Done<bool> done) {
  absl::StatusOr<bool> out = NoSuchUpload();
  {
    absl::MutexLock lock(&mu_);
    auto it = uploads_.find(document_id);
    if (it != uploads_.end() && it->second.session.owner == owner) {
      if (it->second.session.received_bytes != received_bytes) {
        out = absl::AbortedError(
            "a chunk arrived while the upload was being committed; commit again");
      } else {
        uploads_.erase(it);
        out = true;
      }
    }
  }
  done(std::move(out));
}

void InMemoryDocumentStore::ReadStagedChunk(const std::string&, const std::string& document_id,
                                            int64_t index, Done<std::optional<std::string>> done) {
  std::optional<std::string> out;
  {
    absl::MutexLock lock(&mu_);
    auto it = staged_.find(document_id);
    if (it != staged_.end() && index >= 0 && index < static_cast<int64_t>(it->second.size())) {
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
