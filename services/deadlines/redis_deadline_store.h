#pragma once

// DeadlineStore in Redis: the key layout is in deadline_store.h, the scripts in lua/, their
// typed calls in deadline_scripts.h. Round trips: Get, Commit, Stats one each; ListIndex and
// Claim two (the index or claim script, then one read of the deadlines it named);
// ListIndexPage one when the same page listed the same deadlines before on this replica
// (a hint), else two; EraseRequest three (the request's index, its deadlines' authorities,
// the erase).

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "deadline_store.h"
#include "rogatory/common/redis.h"

namespace rogatory::deadlines {

namespace scripts {
struct CommitCall;
}  // namespace scripts

class RedisDeadlineStore final : public DeadlineStore {
 public:
  RedisDeadlineStore(common::RedisClient& redis, common::Sharding sharding)
      : DeadlineStore(sharding), redis_(redis) {}

  // Callbacks run on the Redis client's thread.
  void Get(const std::string& deadline_id, GetCallback done,
           const std::string& idempotency_key = "") override;
  void Commit(int shard, std::vector<DeadlineWrite> writes, const CommitOptions& options,
              CommitCallback done) override;
  void ListIndex(int shard, const std::string& index, absl::Time due_before, int limit,
                 ListCallback done) override;
  // Costs O(log N) to find the position (a binary search among entries of the cursor's
  // score) plus O(limit).
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
  // Two ZRANGEs (the timer set's first entry and the claims' first), sent together.
  absl::StatusOr<std::optional<absl::Time>> NextDue(int shard) override;

  // The name of a key of the shard: P dl:<suffix> (deadline_store.h lists them).
  static std::string Key(int shard, const std::string& suffix);

 private:
  scripts::CommitCall PrepareCommit(int shard, const std::vector<DeadlineWrite>& writes,
                                    const CommitOptions& options) const;
  // The due times of the timers a commit schedules, for TimerScheduled once it succeeded
  // (none for the engine's own fires).
  static std::vector<int64_t> ScheduledTimers(const scripts::CommitCall& call);
  void EraseAttempt(int shard, std::string request_id, common::Dedupe dedupe, int attempt,
                    CommitCallback done);

  common::RedisClient& redis_;
  // ListIndexPage's hints: per page asked (shard, index, bound, size, cursor), the deadline
  // ids it listed last; forgotten all at once past kPageHints pages.
  static constexpr size_t kPageHints = 4096;
  absl::Mutex hints_mu_;
  std::map<std::string, std::vector<std::string>> page_hints_ ABSL_GUARDED_BY(hints_mu_);
};

// A stored deadline from its hash's pb and ver fields; DATA_LOSS if unreadable.
absl::StatusOr<StoredDeadline> ParseStoredDeadline(const std::string& pb, const std::string& ver);

}  // namespace rogatory::deadlines
