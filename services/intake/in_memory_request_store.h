#pragma once

#include <map>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "request_store.h"

namespace rogatory::intake {

// A RequestStore in memory, with the same contract as the Redis one; for unit tests.
// Completes synchronously. Thread-safe.
class InMemoryRequestStore final : public RequestStore {
 public:
  void Create(NewRequest request, Done<CreateOutcome> done) override;
  void Get(const std::string& id, Done<v1::Request> done) override;
  void List(const ListQuery& query, Done<ListPage> done) override;
  void History(const std::string& id, Done<std::vector<common::v1::Event>> done) override;
  void HistoryRange(const std::string& id, int64_t offset, int limit,
                    Done<HistoryPage> done) override;
  void Load(const std::string& id, const std::optional<Idempotency>& idempotency,
            Done<Snapshot> done) override;
  void Mutate(Mutation mutation, Done<MutationOutcome> done) override;
  void FindRetentionWork(int64_t closed_before_ms, int64_t tombstoned_before_ms, int limit,
                         Done<RetentionWork> done) override;
  // Documents live in InMemoryDocumentStore, which this store does not reach: step 1 here
  // ignores `document_ids`.
  void ErasePersonalData(PersonalDataErasure erasure, Done<bool> done) override;
  void EraseRequest(const std::string& id, int64_t tombstoned_before_ms, int64_t now_ms,
                    Done<bool> done) override;
  void ErasureAudited(const PendingErasureAudit& audit, Done<bool> done) override;

  // Every event added to the outbox, in order (what the Redis store XADDs).
  std::vector<common::v1::Event> Outbox() const;

 private:
  absl::StatusOr<CreateOutcome> CreateLocked(NewRequest in);
  absl::StatusOr<MutationOutcome> MutateLocked(Mutation m);

  struct IdempotencyEntry {
    std::string fingerprint;
    std::string request_id;
    std::string result;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, v1::Request> requests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<common::v1::Event>> history_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, IdempotencyEntry> idempotency_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> seen_ ABSL_GUARDED_BY(mu_);
  std::vector<common::v1::Event> outbox_ ABSL_GUARDED_BY(mu_);
  // Retention: closed requests by close time, tombstones by erasure time, pending audits.
  std::map<std::string, int64_t> closed_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> tombstoned_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<ErasureStep, std::string>, int64_t> unaudited_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::intake
