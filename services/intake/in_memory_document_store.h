#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "document_store.h"

namespace rogatory::intake {

// A DocumentStore in memory, for unit tests, with the same contract as the Redis one
// except atomicity: a commit applies the request's change first and then makes the
// document visible and charges the quotas (a test fake, single process). Staged documents
// never expire; retention does not erase documents here, so quotas are never given back.
class InMemoryDocumentStore final : public DocumentStore {
 public:
  explicit InMemoryDocumentStore(RequestStore& requests) : requests_(requests) {}

  void Stage(const std::string& request_id, const std::string& document_id, std::string chunk,
             int64_t staged_bytes, const DocumentQuota& quota, Done<bool> done) override;
  void Discard(const std::string& request_id, const std::string& document_id,
               Done<bool> done) override;
  void Commit(const v1::Document& document, Mutation change, const DocumentQuota& quota,
              Done<MutationOutcome> done) override;
  void List(const std::string& request_id, Done<std::vector<v1::Document>> done) override;
  void ReadChunk(const std::string& request_id, const std::string& document_id, int64_t index,
                 Done<std::optional<std::string>> done) override;
  // Chunked uploads never expire here.
  void StartUpload(const UploadSession& upload, absl::Duration idle, Done<bool> done) override;
  void StageAt(const std::string& request_id, const std::string& document_id,
               const std::string& owner, int64_t offset, std::string chunk, absl::Duration idle,
               const UploadBounds& bounds, Done<int64_t> done) override;
  void GetUpload(const std::string& request_id, const std::string& document_id,
                 const std::string& owner, Done<UploadSession> done) override;
  void ClaimUpload(const std::string& request_id, const std::string& document_id,
                   const std::string& owner, int64_t received_bytes, Done<bool> done) override;
  void ReadStagedChunk(const std::string& request_id, const std::string& document_id, int64_t index,
                       Done<std::optional<std::string>> done) override;

  // Staged documents not yet committed or discarded (tests check nothing is left).
  size_t StagedCount() const;
  // Chunks staged in all, of documents not yet committed or discarded.
  size_t StagedChunks() const;

 private:
  RequestStore& requests_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<std::string>> staged_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> chunks_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<v1::Document>> documents_ ABSL_GUARDED_BY(mu_);
  // Committed document bytes per request and per uploading authority.
  std::map<std::string, int64_t> request_bytes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> authority_bytes_ ABSL_GUARDED_BY(mu_);
  struct Upload {
    UploadSession session;
    int64_t last_offset = -1;
  };
  std::map<std::string, Upload> uploads_ ABSL_GUARDED_BY(mu_);  // by document id

  // The quota `adding` bytes would pass, if any.
  absl::Status CheckQuota(const std::string& request_id, const DocumentQuota& quota,
                          int64_t adding) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

}  // namespace rogatory::intake
