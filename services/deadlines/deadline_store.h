#pragma once

// Deadlines and their timers in Redis. Everything about one deadline lives in the shard of
// its request, so every change (the deadline, its indexes, its timers and its event in the
// outbox) is one Lua script: services/deadlines/lua/*.lua, called through the typed entry
// points of deadline_scripts.h, which build every key name and pass it in KEYS.
//
// Keys (P = "rg:{sN}:"):
//   P dl:d:<id>            hash: pb (Deadline), ver, state, timers (its member in dl:timers),
//                          open (1/0), instrument, authority, request, idem:<key> markers
//   P dl:timers            sorted set: each open deadline's NEXT timer (TimersOf: its first
//                          unfired reminder, its due time or its next escalation) by due
//                          time in ms rounded up; firing it schedules the one after it
//   P dl:claims            sorted set: claimed timer members by lease expiry (ms)
//   P dl:claimtok          hash: claimed member -> "<fencing token>|<due ms>"
//   P dl:fence             string: fencing token counter
//   P dl:byreq:<request>   sorted set: the request's deadlines by due time
//   P dl:open              sorted set: open deadlines by due time
//   P dl:byauth:<id>       sorted set: an executing authority's open deadlines by due time
//   P dl:stats             hash: open:<instrument number> and overdue counts
//   P dl:seq:<request>     string: sequence of the events emitted about the request
//   P dl:parties:<request> hash: ia, is, ea, rs, na: the request's parties (need-to-know)
//   P outbox:deadlines     stream: the outbox

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rogatory/common/access.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/redis.h"
#include "rogatory/common/v1/events.pb.h"
#include "rogatory/deadlines/v1/deadlines.pb.h"

namespace rogatory::deadlines::scripts {
struct CommitCall;
}  // namespace rogatory::deadlines::scripts

namespace rogatory::deadlines {

struct StoredDeadline {
  v1::Deadline deadline;
  int64_t version = 0;
  // Get with an idempotency key: a change under that key was already written.
  bool replayed = false;
};

// One deadline to write: new (expected_version 0: it must not exist) or changed (the
// stored version must still be expected_version). Its timer is replaced by the earliest of
// TimersOf(it).
struct DeadlineWrite {
  v1::Deadline deadline;
  int64_t expected_version = 0;
  std::optional<common::v1::Event> event;  // emitted with the next sequence of the request
  // A changed deadline: IndexedAuthority of the stored one (expected_version) it replaces.
  // The store removes the deadline from that authority's index; a stored deadline indexed
  // under another is a kConflict.
  std::string stored_authority = {};
};

// The executing authority whose index (byauth) holds the deadline: open ones only.
std::string IndexedAuthority(const v1::Deadline& deadline);

struct CommitOptions {
  std::string idempotency_key;             // non-empty: a repeat with the same key is kReplayed
  std::string claim_member;                // non-empty: only if this timer is still claimed with...
  std::string claim_token;                 // ...this token (else kFenced); releases the claim
  const common::Dedupe* dedupe = nullptr;  // non-null: ReceiverScript (kDuplicate on repeat)
  // Need-to-know: the parties of `parties_request_id` (from the RequestFacts of a received
  // event) to record in the same step; empty request id: none. Non-empty values only.
  std::string parties_request_id;
  common::RequestParties parties;
};

enum class CommitOutcome { kOk, kReplayed, kConflict, kExists, kFenced, kDuplicate };

// One entry of an index page: its position (due ms, id) and the deadline, unless the entry
// outlived its deadline.
struct IndexEntry {
  int64_t score = 0;
  std::string id;
  std::optional<StoredDeadline> deadline;
};

// A page of one shard's index: entries in (score, id) order after a position.
struct IndexPage {
  std::vector<IndexEntry> entries;
  // The index may hold further entries at or below the maximum score.
  bool more = false;
};

// A position in an index: after the entry (score, id); no cursor: from the start.
struct IndexCursor {
  int64_t score = 0;
  std::string id;
};

// A claimed timer, with the deadline as the claim found it.
struct ClaimedTimer {
  std::string member;
  std::string token;
  absl::Time due;
  bool takeover = false;  // the previous claimant's lease had run out
  std::optional<StoredDeadline> deadline;
};

class DeadlineStore {
 public:
  DeadlineStore(common::RedisClient& redis, common::Sharding sharding)
      : redis_(redis), sharding_(sharding) {}

  const common::Sharding& sharding() const { return sharding_; }
  // The shard of a request id ("rq-<shard>-<ulid>").
  absl::StatusOr<int> ShardOfRequest(const std::string& request_id) const;
  absl::StatusOr<int> ShardOfDeadline(const std::string& deadline_id) const;

  using GetCallback = std::function<void(absl::StatusOr<StoredDeadline>)>;
  using ListCallback = std::function<void(absl::StatusOr<std::vector<StoredDeadline>>)>;
  using CommitCallback = std::function<void(absl::StatusOr<CommitOutcome>)>;

  // NOT_FOUND if there is none. `done` runs on the Redis thread. With an idempotency key,
  // also says whether a change under that key was already written.
  void Get(const std::string& deadline_id, GetCallback done,
           const std::string& idempotency_key = "");
  // All the writes (one shard) or none.
  void Commit(int shard, std::vector<DeadlineWrite> writes, const CommitOptions& options,
              CommitCallback done);
  // Up to `limit` deadlines of an index ("byreq:<id>", "open", "byauth:<id>") due at or
  // before `due_before`.
  void ListIndex(int shard, const std::string& index, absl::Time due_before, int limit,
                 ListCallback done);

  // Up to `limit` entries of an index with score (due ms) at most `max_score`, in (score,
  // id) order (ids compared byte by byte) after `after`. Costs O(log N) to find the
  // position (a binary search among entries of the cursor's score) plus O(limit).
  using PageCallback = std::function<void(absl::StatusOr<IndexPage>)>;
  void ListIndexPage(int shard, const std::string& index, int64_t max_score, int limit,
                     const std::optional<IndexCursor>& after, PageCallback done);

  // Blocking versions for the timer thread and tests (never from Redis callbacks or gRPC
  // handlers).
  absl::StatusOr<CommitOutcome> CommitBlocking(int shard, std::vector<DeadlineWrite> writes,
                                               const CommitOptions& options);
  absl::StatusOr<StoredDeadline> GetBlocking(const std::string& deadline_id);
  // Claims up to `limit` due timers of a shard (first those whose claim's lease ran out),
  // each for `lease` from `now`, with a new fencing token.
  absl::StatusOr<std::vector<ClaimedTimer>> Claim(int shard, absl::Time now, absl::Duration lease,
                                                  int limit);
  // Retention: deletes every deadline of the request (timers, claims, indexes, counts) and
  // its event sequence, marking the REQUEST_ERASED event handled in the same step
  // (kDuplicate for a repeat).
  void EraseRequest(int shard, const std::string& request_id, const common::Dedupe& dedupe,
                    CommitCallback done);
  // Need-to-know: the parties recorded for a request (see CommitOptions); nullopt if none.
  void GetParties(const std::string& request_id,
                  std::function<void(absl::StatusOr<std::optional<common::RequestParties>>)> done);
  // Sums the shard's open counts per instrument and overdue count.
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> Stats(int shard);

  static std::string Key(int shard, const std::string& suffix);

 private:
  scripts::CommitCall PrepareCommit(int shard, const std::vector<DeadlineWrite>& writes,
                                    const CommitOptions& options) const;
  void EraseAttempt(int shard, std::string request_id, common::Dedupe dedupe, int attempt,
                    CommitCallback done);

  common::RedisClient& redis_;
  common::Sharding sharding_;
};

// A stored deadline from its hash's pb and ver fields; DATA_LOSS if unreadable.
absl::StatusOr<StoredDeadline> ParseStoredDeadline(const std::string& pb, const std::string& ver);

}  // namespace rogatory::deadlines
