#pragma once

#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "request_store.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/redis.h"

namespace rogatory::intake {

// RequestStore on Redis. Every key of a request lives in the request's shard (its id names
// it), so each change is one Lua script in one Redis Cluster slot:
//   rg:{sN}:req:<id>              hash: pb (Request), status, instrument, urgency,
//                                 issuing_state, requested_state, created_ms, updated_ms,
//                                 etag (the version; status, etag and updated_ms are
//                                 authoritative over pb)
//   rg:{sN}:hist:<id>             list of history events (serialized common.v1.Event)
//   rg:{sN}:idem:<scope>:<key>    hash: fp, id (and res, the serialized result, for the
//                                 mutating RPCs other than submit); expires after the TTL
//   rg:{sN}:idx:all               sorted set of ids by creation time (ms)
//   rg:{sN}:idx:status:<n>        the same, per status
//   rg:{sN}:idx:instrument:<n>    the same, per instrument
//   rg:{sN}:idx:urgency:<n>       the same, per urgency
//   rg:{sN}:idx:issuing_state:<XX>, rg:{sN}:idx:requested_state:<XX>   the same, per state
//   rg:{sN}:idx:updated           sorted set of ids by last update time (ms)
//   rg:{sN}:counts                hash "<instrument>:<status>" (numbers) -> how many requests
//                                 (tombstones included until erased) have them: kept by the
//                                 scripts that create, change and erase requests, read by
//                                 the requests gauge (layout 3, issue 19)
//   rg:{sN}:outbox:intake         intake's outbox (see common/event_sink.h)
//   rg:{sN}:idx:closed            sorted set of ids of requests in a final status, by the
//                                 time they reached it (retention step 1 runs from it)
//   rg:{sN}:idx:tombstoned        sorted set of tombstone ids by erasure time (step 2)
//   rg:{sN}:retention:unaudited   hash "<step>:<id>" -> erasure ms: erasures not yet in the
//                                 audit log
// A tombstone's hash has erased_ms (the time of step 1) and a pb without personal data.
// A new request with an idempotency key goes to the shard of (scope, key), so the record
// and the request are written together; the key of a change of an existing request lives
// in that request's shard. Lists read every shard (bounded scans) and merge.
class RedisRequestStore final : public RequestStore {
 public:
  RedisRequestStore(common::RedisClient& redis, common::Sharding sharding,
                    absl::Duration idempotency_ttl)
      : redis_(redis), sharding_(sharding), idempotency_ttl_(idempotency_ttl) {}

  // The shard's request counts (rg:{sN}:counts, see above): field "<instrument>:<status>".
  static std::string CountsKey(int shard) {
    return absl::StrCat(common::Sharding::Prefix(shard), "counts");
  }

  void Create(NewRequest request, Done<CreateOutcome> done) override;
  void Get(const std::string& id, Done<v1::Request> done) override;
  void List(const ListQuery& query, Done<ListPage> done) override;
  // One script: the read and, when the scope reaches the request, its audit entry.
  void GetRecorded(const std::string& id, const RecordedRead& read,
                   Done<ReadOutcome> done) override;
  void History(const std::string& id, Done<std::vector<common::v1::Event>> done) override;
  void HistoryRange(const std::string& id, int64_t offset, int limit,
                    Done<HistoryPage> done) override;
  void Load(const std::string& id, const std::optional<Idempotency>& idempotency,
            Done<Snapshot> done) override;
  void Mutate(Mutation mutation, Done<MutationOutcome> done) override;
  void FindRetentionWork(int64_t closed_before_ms, int64_t tombstoned_before_ms, int limit,
                         Done<RetentionWork> done) override;
  void ErasePersonalData(PersonalDataErasure erasure, Done<bool> done) override;
  void EraseRequest(const std::string& id, int64_t tombstoned_before_ms, int64_t now_ms,
                    Done<bool> done) override;
  void ErasureAudited(const PendingErasureAudit& audit, Done<bool> done) override;

  // Most index entries one shard examines per List call: bounds the work of a page.
  static constexpr int kScanBudget = 1000;
  // Rounds of a List (see List in the .cc): the first asks each shard for a share of the
  // page, the others top up from shards that may hold more of it.
  static constexpr int kListRounds = 3;

 private:
  struct ShardPage;
  struct ListGather;
  struct RoundShard;
  // Entries a list reads past a shard's cursor for those at the cursor's own time, which it
  // skips (the cursor's among them).
  static constexpr int kCursorTies = 8;
  // Create, Mutate and EraseRequest run a script whose keys C++ computed from data it read
  // (or was given); the script re-checks that data and, when it changed, the call is made
  // again with what the script found, at most `attempts_left` times in all.
  void CreateAttempt(NewRequest request, std::string gone_id, int attempts_left,
                     Done<CreateOutcome> done);
  void MutateAttempt(std::shared_ptr<const Mutation> mutation,
                     std::map<std::string, std::string> before, int attempts_left,
                     Done<MutationOutcome> done);
  void EraseRequestAttempt(const std::string& id, int64_t tombstoned_before_ms, int64_t now_ms,
                           int attempts_left, Done<bool> done);
  // A shard's part of a list round is in (or failed): the round ends with the last one.
  void ListShardDone(const std::shared_ptr<ListGather>& gather, int shard, absl::Status error,
                     ShardPage page);
  // One round of a List: asks `shards` for up to `limit` matches each, after where each
  // stopped before; evaluates the page when the last one answers.
  void ListRound(const std::shared_ptr<ListGather>& gather, const std::vector<int>& shards,
                 int limit);
  // A round's second step, when every shard's index read is in: reads the candidates' rows.
  void ListRows(const std::shared_ptr<ListGather>& gather, std::vector<RoundShard> reads,
                bool all_served, absl::Status error);
  void ListEvaluate(const std::shared_ptr<ListGather>& gather);
  // A caller's worklist (a scoped list not by update time), from its worklist rows: see
  // ListWorklist in the .cc.
  struct WorklistGather;
  void ListWorklist(const ListQuery& query, Done<ListPage> done);
  void WorklistRecords(const std::shared_ptr<WorklistGather>& gather);
  void WorklistDone(const std::shared_ptr<WorklistGather>& gather);

  common::RedisClient& redis_;
  common::Sharding sharding_;
  absl::Duration idempotency_ttl_;
};

}  // namespace rogatory::intake
