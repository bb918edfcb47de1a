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
// document visible (a test fake, single process). Staged documents never expire.
class InMemoryDocumentStore final : public DocumentStore {
 public:
  explicit InMemoryDocumentStore(RequestStore& requests) : requests_(requests) {}

  void Stage(const std::string& request_id, const std::string& document_id, std::string chunk,
             Done<bool> done) override;
  void Discard(const std::string& request_id, const std::string& document_id,
               Done<bool> done) override;
  void Commit(const v1::Document& document, Mutation change,
              Done<MutationOutcome> done) override;
  void List(const std::string& request_id, Done<std::vector<v1::Document>> done) override;
  void ReadChunk(const std::string& request_id, const std::string& document_id, int64_t index,
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
};

}  // namespace rogatory::intake
