#pragma once

// DeadlineStore in process memory: a real, tested fake (it keeps the contract suite of
// tests/support/deadline_store_contract.h) for unit tests of the service, the timer engine
// and the event handler without Redis. Callbacks run on the calling thread, after the
// change is made and outside the store's lock. Thread-safe. Duplicate markers never expire.

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "deadline_store.h"

namespace rogatory::deadlines {

class InMemoryDeadlineStore final : public DeadlineStore {
 public:
  explicit InMemoryDeadlineStore(common::Sharding sharding);

  void Get(const std::string& deadline_id, GetCallback done,
           const std::string& idempotency_key = "") override;
  void Commit(int shard, std::vector<DeadlineWrite> writes, const CommitOptions& options,
              CommitCallback done) override;
  void ListIndex(int shard, const std::string& index, absl::Time due_before, int limit,
                 ListCallback done) override;
  void ListIndexPage(int shard, const std::string& index, int64_t max_score, int limit,
                     const std::optional<IndexCursor>& after, PageCallback done) override;
  absl::StatusOr<CommitOutcome> CommitBlocking(int shard, std::vector<DeadlineWrite> writes,
                                               const CommitOptions& options) override;
  absl::StatusOr<StoredDeadline> GetBlocking(const std::string& deadline_id) override;
  absl::StatusOr<std::vector<ClaimedTimer>> Claim(int shard, absl::Time now, absl::Duration lease,
                                                  int limit) override;
  void EraseRequest(int shard, const std::string& request_id, const common::Dedupe& dedupe,
                    CommitCallback done) override;
  void GetParties(const std::string& request_id, PartiesCallback done) override;
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> Stats(int shard) override;
  absl::StatusOr<int64_t> CountOpenDue(int shard, absl::Time from, absl::Time to) override;
  absl::StatusOr<std::optional<absl::Time>> NextDue(int shard) override;

  // The events the shard's commits emitted, oldest first, with their sequences (what the
  // Redis store appends to the shard's outbox stream).
  std::vector<common::v1::Event> Outbox(int shard);

 private:
  // A sorted set: members by (score, member), as Redis orders them.
  struct Index {
    std::map<std::string, int64_t> score_of;
    std::set<std::pair<int64_t, std::string>> order;
    void Add(const std::string& member, int64_t score);
    void Remove(const std::string& member);
  };
  struct Record {
    StoredDeadline stored;
    std::set<std::string> idempotency_keys;
    std::string timer;  // its member in the timer set; empty: none
    bool open = false;
    int instrument = 0;
    std::string authority;  // indexed under; empty: none
    int state = 0;
    std::string request_id;
  };
  struct Shard {
    std::map<std::string, Record> deadlines;
    Index timers;
    Index claims;                                                   // by lease expiry
    std::map<std::string, std::pair<std::string, int64_t>> tokens;  // member -> (token, due)
    int64_t fence = 0;
    std::map<std::string, Index> indexes;  // "byreq:<id>", "open", "byauth:<id>"
    std::map<std::string, int64_t> stats;
    std::map<std::string, int64_t> sequences;                           // request -> last sequence
    std::map<std::string, std::map<std::string, std::string>> parties;  // request -> ia, is...
    std::set<std::string> seen;                                         // duplicate markers
    std::vector<common::v1::Event> outbox;
  };

  CommitOutcome CommitLocked(Shard& s, const std::vector<DeadlineWrite>& writes,
                             const CommitOptions& options) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::vector<Shard> shards_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::deadlines
