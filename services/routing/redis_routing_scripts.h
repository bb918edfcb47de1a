#pragma once

// The typed calls of RedisRoutingStore's Redis scripts (services/routing/lua/*.lua) and of
// the plain reads that name their keys: one entry point per script, taking a struct of named
// fields and answering a typed result. Replies are read with common/redis_reply.h only;
// nothing above this layer sees a RedisReply. Each struct's fields follow its script's
// header (KEYS, ARGV, Returns), which is the contract.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rogatory/common/redis.h"
#include "routing_store.h"

namespace rogatory::routing::internal {

// The keys of one shard (prefix rg:{sN}:rt:); see RedisRoutingStore for the layout.
class ShardKeys {
 public:
  explicit ShardKeys(int shard);
  int shard() const { return shard_; }
  const std::string& prefix() const { return prefix_; }
  std::string Decision(const std::string& request_id) const;
  std::string Sequence(const std::string& request_id) const;
  std::string Documents(const std::string& request_id) const;
  std::string Deadlines(const std::string& request_id) const;
  std::string JobsOf(const std::string& request_id) const;
  std::string Parties(const std::string& request_id) const;
  std::string Job(const std::string& job_id) const;
  // `pair` is "<src>><tgt>" in lower case (PairOf).
  std::string Queue(const std::string& pair) const;
  std::string QueueByAge(const std::string& pair) const;
  std::string Held(const std::string& holder) const;
  std::string Pairs() const;
  std::string Leases() const;
  std::string Dead() const;
  std::string Unroutable() const;
  std::string Outbox() const;

 private:
  int shard_;
  std::string prefix_;
};

// "<src>><tgt>" in lower case: queue keys ignore case (BCP 47 is case-insensitive).
std::string PairOf(const std::string& source, const std::string& target);

// Every script that may write asks for "retry" when what C++ read changed since.
enum class Step { kDone, kDuplicate, kRetry };

// The parties a receiver records for the request ('' leaves one as it is): issuing
// authority, issuing state, executing authority, requested state, notified authority.
using PartiesValues = std::array<std::string, 5>;

// The fields of a job hash, as a script or HGETALL answers them.
using JobFields = std::map<std::string, std::string>;
v1::TranslationJob JobFromFields(const std::string& id, const JobFields& fields);

// ---- Plain reads (one command each; several run at once where a caller asks).

// SMEMBERS jobs:<request>.
void ReadJobIds(common::RedisClient& redis, const ShardKeys& keys, const std::string& request_id,
                StoreCallback<std::vector<std::string>> done);
// The fields of some jobs (HMGET each, all at once): a row per id, in order; a missing job
// has no "exists".
struct JobRow {
  std::string id;
  bool exists = false;
  std::string request_id, document, source, target, translated_document, failure_code, status,
      token, holder;
};
void ReadJobRows(common::RedisClient& redis, const ShardKeys& keys,
                 const std::vector<std::string>& job_ids, StoreCallback<std::vector<JobRow>> done);
// HGETALL docs:<request>: document id -> "<language>\n<sha256>".
void ReadDocuments(common::RedisClient& redis, const ShardKeys& keys, const std::string& request_id,
                   StoreCallback<std::map<std::string, std::string>> done);
// HMGET of some fields of dec:<request> ('' for a missing one).
void ReadDecisionFields(common::RedisClient& redis, const ShardKeys& keys,
                        const std::string& request_id, std::vector<std::string> fields,
                        StoreCallback<std::vector<std::string>> done);
// A completion's context, both at once: the request's job ids (SMEMBERS jobs:<request>) and
// its decision's forward status (HGET dec:<request> fwd, '' for none).
struct CompletionContext {
  std::vector<std::string> job_ids;
  std::string forward_status;
};
void ReadCompletionContext(common::RedisClient& redis, const ShardKeys& keys,
                           const std::string& request_id, StoreCallback<CompletionContext> done);
// SMEMBERS pairs.
void ReadPairs(common::RedisClient& redis, const ShardKeys& keys,
               StoreCallback<std::vector<std::string>> done);
// ZRANGEBYSCORE leases -inf <now> LIMIT 0 <limit>.
void ReadDueLeases(common::RedisClient& redis, const ShardKeys& keys, int64_t now_ms, int limit,
                   StoreCallback<std::vector<std::string>> done);

// ---- Receiver scripts (decide.lua, add_document.lua, update_deadline.lua,
// end_request.lua, erase_request.lua).

struct ReceiverBase {
  std::string seen_key;      // the event's dedupe marker
  std::string retention_ms;  // how long the marker lives
  std::string request_id;
  int64_t now_ms = 0;
};

struct DecideCall : ReceiverBase {
  PartiesValues parties;
  std::string decision;  // serialized RoutingDecision
  bool need = false;
  std::string source, target;
  int urgency = 0;
  bool unroutable = false;
  std::string event_template;  // serialized Event every event of the request starts from
  int forward_status = 0;
  std::string decided_with_status, decided_without_status;  // ROUTING_DECIDED bytes
  struct Existing {
    std::string id, pair, status, token;
    std::string cancel_event;  // JOB_CANCELLED bytes, or '' to leave the job
  };
  std::vector<Existing> existing;
  struct Create {
    std::string id, document, queued_event;
  };
  std::vector<Create> create;                                  // into PairOf(source, target)
  std::vector<std::pair<std::string, std::string>> documents;  // as read
};
void RunDecide(common::RedisClient& redis, const ShardKeys& keys, const DecideCall& call,
               StoreCallback<Step> done);

struct AddDocumentCall : ReceiverBase {
  PartiesValues parties;
  std::string document, language, sha256;
  std::string read_source, read_target;  // the decision's languages as read ('' for none)
  std::string job_id;                    // the job the document would get
  std::string queued_event;              // JOB_QUEUED bytes
};
void RunAddDocument(common::RedisClient& redis, const ShardKeys& keys, const AddDocumentCall& call,
                    StoreCallback<Step> done);

struct UpdateDeadlineCall : ReceiverBase {
  PartiesValues parties;
  std::string deadline_id;
  std::optional<int64_t> due_ms;  // nullopt removes the deadline
  std::vector<JobRow> jobs;       // as read
};
void RunUpdateDeadline(common::RedisClient& redis, const ShardKeys& keys,
                       const UpdateDeadlineCall& call, StoreCallback<Step> done);

struct EndRequestCall : ReceiverBase {
  PartiesValues parties;
  std::vector<JobRow> jobs;                // as read
  std::vector<std::string> cancel_events;  // per job: JOB_CANCELLED bytes or ''
};
void RunEndRequest(common::RedisClient& redis, const ShardKeys& keys, const EndRequestCall& call,
                   StoreCallback<Step> done);

struct EraseRequestCall : ReceiverBase {
  std::vector<JobRow> jobs;  // as read
};
void RunEraseRequest(common::RedisClient& redis, const ShardKeys& keys,
                     const EraseRequestCall& call, StoreCallback<Step> done);

// ---- Job scripts.

// peek_queues.lua: the best head among some queues.
struct QueueHead {
  double score = 0;
  std::string job_id;
};
void RunPeekQueues(common::RedisClient& redis, const ShardKeys& keys,
                   const std::vector<std::string>& pairs,
                   StoreCallback<std::optional<QueueHead>> done);

// What the lease-checked scripts answer when the caller does not hold the job.
enum class LeaseRefusal { kNone, kNotFound, kNotHolder, kStale, kExpired, kConflict };
absl::Status LeaseError(LeaseRefusal refusal);

struct ClaimCall {
  std::string job_id, pair, request_id, token;  // as read
  int64_t now_ms = 0;
  int64_t lease_ms = 0;
  std::string claimer;
  std::string claimed_event;  // JOB_CLAIMED bytes
};
struct ClaimResult {
  bool retry = false;
  JobFields job;
  // What Complete reads before its script, as the claim saw it (a hint: complete.lua
  // re-checks it).
  CompletionContext context;
};
void RunClaim(common::RedisClient& redis, const ShardKeys& keys, const ClaimCall& call,
              StoreCallback<ClaimResult> done);

struct HeartbeatCall {
  std::string job_id;
  int64_t token = 0;
  std::string claimer;
  std::optional<int64_t> lease_ms;  // nullopt keeps the claim's
  int64_t now_ms = 0;
};
struct LeaseResult {
  LeaseRefusal refusal = LeaseRefusal::kNone;
  bool retry = false;
  std::string outcome;  // the script's word: ok, completed, replayed, requeued, dead
  JobFields job;
  bool request_done = false;  // complete.lua only
};
void RunHeartbeat(common::RedisClient& redis, const ShardKeys& keys, const HeartbeatCall& call,
                  StoreCallback<LeaseResult> done);

struct CompleteCall {
  std::string job_id;
  int64_t token = 0;
  std::string claimer, translated_document, sha256;
  int64_t now_ms = 0;
  std::string request_id;                                       // as read
  std::string forward_status;                                   // dec:<request> fwd as read
  std::string completed_with_status, completed_without_status;  // JOB_COMPLETED bytes
  std::vector<std::string> request_jobs;                        // as read
};
void RunComplete(common::RedisClient& redis, const ShardKeys& keys, const CompleteCall& call,
                 StoreCallback<LeaseResult> done);

struct FailCall {
  std::string job_id;
  int64_t token = 0;
  std::string claimer, failure_code;
  bool retryable = false;
  int max_attempts = 0;
  int64_t now_ms = 0;
  std::string request_id, pair;            // as read
  std::string requeued_event, dead_event;  // JOB_FAILED bytes
};
void RunFail(common::RedisClient& redis, const ShardKeys& keys, const FailCall& call,
             StoreCallback<LeaseResult> done);

struct SweepCall {
  int64_t now_ms = 0;
  int max_attempts = 0;
  struct Job {
    JobRow row;                              // as read
    std::string requeued_event, dead_event;  // JOB_FAILED bytes
  };
  std::vector<Job> jobs;
};
void RunSweep(common::RedisClient& redis, const ShardKeys& keys, const SweepCall& call,
              StoreCallback<SweepResult> done);

// ---- Reading scripts.

// shard_stats.lua; nullopt asks to retry (the pairs changed).
void RunShardStats(common::RedisClient& redis, const ShardKeys& keys,
                   const std::vector<std::string>& pairs,
                   StoreCallback<std::optional<ShardStats>> done);

// request_jobs.lua; nullopt asks to retry (the request's jobs changed).
void RunRequestJobs(common::RedisClient& redis, const ShardKeys& keys,
                    const std::string& request_id, const std::vector<std::string>& job_ids,
                    StoreCallback<std::optional<std::vector<v1::TranslationJob>>> done);

// queue_page.lua.
struct QueuePageCall {
  std::vector<std::string> indexes;  // queue or held keys
  int need = 0;
  std::optional<QueueCursor> after;
  std::vector<std::pair<int64_t, int64_t>> ranges;  // score ranges, ascending
};
struct PageEntry {
  std::string job_id;
  int64_t score = 0;
  size_t index = 0;  // into QueuePageCall::indexes
};
void RunQueuePage(common::RedisClient& redis, const QueuePageCall& call,
                  StoreCallback<std::vector<PageEntry>> done);

// listed_jobs.lua: each entry's job, re-checked in its index; nullopt asks to retry.
void RunListedJobs(common::RedisClient& redis, const ShardKeys& keys,
                   const std::vector<std::pair<PageEntry, std::string>>& entries,
                   StoreCallback<std::optional<std::vector<v1::TranslationJob>>> done);

}  // namespace rogatory::routing::internal
