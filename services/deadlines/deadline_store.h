#pragma once

// The deadline store's interface and the data it holds. Everything about one deadline lives
// in the shard of its request, so every change (the deadline, its indexes, its timers and
// its event in the outbox) is one atomic step. In Redis (redis_deadline_store.h) that step
// is one Lua script: services/deadlines/lua/*.lua, called through the typed entry points of
// deadline_scripts.h, which build every key name and pass it in KEYS.
//
// Redis keys (P = "rg:{sN}:"):
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
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rogatory/common/access.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/v1/events.pb.h"
#include "rogatory/deadlines/v1/deadlines.pb.h"

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

// Deadline.etag of the deadline stored at `version` (its decimal form). Every store writes
// a deadline with the etag of the version it writes, so that every read (Get, lists,
// timers) returns the etag that a change's `etag` is compared with.
std::string DeadlineEtag(int64_t version);

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

// The state of deadline-tracking: deadlines, their indexes and timers, the events their
// changes emit and the parties of their requests. The service, the timer engine and the
// event handler use only this interface. Implementations: RedisDeadlineStore
// (redis_deadline_store.h), InMemoryDeadlineStore (in_memory_deadline_store.h); both keep
// the contract suite of tests/support/deadline_store_contract.h. Thread-safe.
//
// Asynchronous calls run `done` exactly once, possibly on another thread (the Redis
// client's), and it must not block. Errors: NOT_FOUND for a missing deadline, UNAVAILABLE
// when the store cannot be reached (retryable), INTERNAL / DATA_LOSS for unreadable data.
class DeadlineStore {
 public:
  virtual ~DeadlineStore() = default;

  const common::Sharding& sharding() const { return sharding_; }
  // The shard of a request id ("rq-<shard>-<ulid>").
  absl::StatusOr<int> ShardOfRequest(const std::string& request_id) const {
    return sharding_.ShardOf("rq", request_id);
  }
  absl::StatusOr<int> ShardOfDeadline(const std::string& deadline_id) const {
    return sharding_.ShardOf("dl", deadline_id);
  }

  using GetCallback = std::function<void(absl::StatusOr<StoredDeadline>)>;
  using ListCallback = std::function<void(absl::StatusOr<std::vector<StoredDeadline>>)>;
  using CommitCallback = std::function<void(absl::StatusOr<CommitOutcome>)>;
  using PageCallback = std::function<void(absl::StatusOr<IndexPage>)>;
  using PartiesCallback =
      std::function<void(absl::StatusOr<std::optional<common::RequestParties>>)>;

  // NOT_FOUND if there is none. With an idempotency key, also says whether a change under
  // that key was already written.
  virtual void Get(const std::string& deadline_id, GetCallback done,
                   const std::string& idempotency_key = "") = 0;
  // All the writes (one shard) or none.
  virtual void Commit(int shard, std::vector<DeadlineWrite> writes, const CommitOptions& options,
                      CommitCallback done) = 0;
  // Up to `limit` deadlines of an index ("byreq:<id>", "open", "byauth:<id>") due at or
  // before `due_before` (index entries without their deadline count, and are skipped).
  virtual void ListIndex(int shard, const std::string& index, absl::Time due_before, int limit,
                         ListCallback done) = 0;
  // Up to `limit` entries of an index with score (due ms) at most `max_score`, in (score,
  // id) order (ids compared byte by byte) after `after`.
  virtual void ListIndexPage(int shard, const std::string& index, int64_t max_score, int limit,
                             const std::optional<IndexCursor>& after, PageCallback done) = 0;

  // Blocking versions for the timer thread and tests (never from store callbacks or gRPC
  // handlers).
  virtual absl::StatusOr<CommitOutcome> CommitBlocking(int shard, std::vector<DeadlineWrite> writes,
                                                       const CommitOptions& options) = 0;
  virtual absl::StatusOr<StoredDeadline> GetBlocking(const std::string& deadline_id) = 0;
  // Claims up to `limit` due timers of a shard (first those whose claim's lease ran out),
  // each for `lease` from `now`, with a new fencing token. Blocking.
  virtual absl::StatusOr<std::vector<ClaimedTimer>> Claim(int shard, absl::Time now,
                                                          absl::Duration lease, int limit) = 0;
  // Retention: deletes every deadline of the request (timers, claims, indexes, counts), its
  // event sequence and its parties, marking the REQUEST_ERASED event handled in the same
  // step (kDuplicate for a repeat).
  virtual void EraseRequest(int shard, const std::string& request_id, const common::Dedupe& dedupe,
                            CommitCallback done) = 0;
  // Need-to-know: the parties recorded for a request (see CommitOptions); nullopt if none.
  virtual void GetParties(const std::string& request_id, PartiesCallback done) = 0;
  // The shard's open counts per instrument ("open:<instrument number>") and overdue count
  // ("overdue"). Blocking.
  virtual absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> Stats(int shard) = 0;
  // The shard's open deadlines due after `from` and at or before `to` (the due-soon gauges,
  // rogatory_deadlines_due). Blocking.
  virtual absl::StatusOr<int64_t> CountOpenDue(int shard, absl::Time from, absl::Time to) = 0;
  // When the timer engine next has something to do in the shard: the earliest of its next
  // timer's due time and its claims' lease expiry; nullopt if it has neither. Blocking.
  virtual absl::StatusOr<std::optional<absl::Time>> NextDue(int shard) = 0;

  // Called after each commit that scheduled a timer (not the timer engine's own fires,
  // whose engine looks again after its pass), with the shard and the timer's due time, on
  // the thread that saw the commit succeed; null (the default) calls nothing. The service
  // wakes its timer engine with it and tells the other replicas'. It must be short.
  // (RedisDeadlineStore calls it; the in-memory store of unit tests does not.)
  using TimerScheduledHook = std::function<void(int shard, absl::Time due)>;
  void SetTimerScheduledHook(TimerScheduledHook hook) {
    absl::MutexLock lock(&hook_mu_);
    hook_ = std::move(hook);
  }

 protected:
  explicit DeadlineStore(common::Sharding sharding) : sharding_(sharding) {}
  void TimerScheduled(int shard, absl::Time due) {
    absl::ReaderMutexLock lock(&hook_mu_);
    if (hook_) hook_(shard, due);
  }

 private:
  common::Sharding sharding_;
  absl::Mutex hook_mu_;
  TimerScheduledHook hook_ ABSL_GUARDED_BY(hook_mu_);
};

}  // namespace rogatory::deadlines
