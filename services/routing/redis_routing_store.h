#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/redis.h"
#include "routing_store.h"

namespace rogatory::routing {

// RoutingStore on Redis. Keys, all in the request's shard N (prefix rg:{sN}:rt:):
//   dec:<request>    hash: pb (RoutingDecision), need, src, tgt, urg, due, ended,
//                    unroutable, tmpl (the request's event template)
//   seq:<request>    counter: sequence of the events routing emitted about the request
//   docs:<request>   hash: document id -> "<language>\n<sha256>"
//   dl:<request>     hash: deadline id -> due ms (the queue order uses the earliest)
//   jobs:<request>   set of the request's job ids
//   job:<job>        hash: the job (rid, doc, src, tgt, status, urg, due, attempts, token,
//                    by, lease_exp, lease_ms, tdoc, tsha, created, updated, fcode, ...)
//   q:<src>><tgt>    sorted set: queued jobs by urgency, then earliest deadline
//   qa:<src>><tgt>   sorted set: the same jobs by creation time (oldest-job age)
//   pairs            set of the language pairs the shard has queued
//   leases           sorted set: claimed jobs by lease expiry (the sweeper's index)
//   held:<claimer>   sorted set: the jobs a translator holds, by the queue score (the
//                    index of ListTranslationJobs' HELD queue)
//   dead             sorted set: dead-lettered jobs by time
//   unroutable       sorted set: requests the registry could not route, for a person
//   claimidem:<sha1(claimer, request_id)>  string, TTL 24 h: the job a claim took (in the
//                    shard of the claimer and key, not of the job)
//   metrics-leader   (shard 0 only) string, TTL: the replica exporting the queue gauges
// Events go to rg:{sN}:outbox:routing in the same script as the change. The scripts are
// lua/*.lua, called through redis_routing_scripts.h; each is passed every key it touches, so
// where a key depends on stored data this class reads that data first and the script
// re-checks it ('retry' when it changed). Job ids are
// tj-<shard>-<26 hex of sha1(request, document, target)>: one job per document and target,
// whatever the order or repetition of the events that create it.
class RedisRoutingStore final : public RoutingStore {
 public:
  RedisRoutingStore(common::RedisClient& redis, common::Sharding sharding);

  void RecordDecision(const common::v1::Event& trigger, const v1::RoutingDecision& decision,
                      common::v1::RequestStatus status, const common::Dedupe& dedupe,
                      absl::Time now, StoreCallback<Outcome> done) override;
  void AddDocument(const common::v1::Event& trigger, const common::Dedupe& dedupe, absl::Time now,
                   StoreCallback<Outcome> done) override;
  void UpdateDeadline(const common::v1::Event& trigger, std::optional<absl::Time> due,
                      const common::Dedupe& dedupe, StoreCallback<Outcome> done) override;
  void EndRequest(const common::v1::Event& trigger, const common::Dedupe& dedupe, absl::Time now,
                  StoreCallback<Outcome> done) override;
  void EraseRequest(const common::v1::Event& trigger, const common::Dedupe& dedupe, absl::Time now,
                    StoreCallback<Outcome> done) override;
  void GetDecision(const std::string& request_id, StoreCallback<v1::RoutingDecision> done) override;
  void GetJob(const std::string& job_id, StoreCallback<v1::TranslationJob> done) override;
  void GetParties(const std::string& request_id,
                  StoreCallback<std::optional<common::RequestParties>> done) override;
  void ListJobsOfRequest(const std::string& request_id,
                         StoreCallback<std::vector<v1::TranslationJob>> done) override;
  void Claim(const ClaimSpec& spec, absl::Time now,
             StoreCallback<v1::TranslationJob> done) override;
  void Heartbeat(const std::string& job_id, int64_t token, const std::string& claimer,
                 absl::Duration lease, absl::Time now,
                 StoreCallback<v1::TranslationJob> done) override;
  void Complete(const std::string& job_id, int64_t token, const std::string& claimer,
                const std::string& translated_document_id, const std::string& sha256,
                absl::Time now, StoreCallback<CompleteResult> done) override;
  void Fail(const std::string& job_id, int64_t token, const std::string& claimer,
            const std::string& failure_code, bool retryable, int max_attempts, absl::Time now,
            StoreCallback<FailResult> done) override;
  void SweepExpiredLeases(int shard, int max_attempts, int limit, absl::Time now,
                          StoreCallback<SweepResult> done) override;
  void Stats(int shard, StoreCallback<ShardStats> done) override;
  void ListQueue(const QueueListSpec& spec, StoreCallback<QueueListPage> done) override;

  // "rg:{sN}:rt:"
  static std::string KeyPrefix(int shard);

  // What a claim on this replica saw of its job's request, so that the job's completion
  // runs its script at once (one round trip) instead of reading the job, then the request's
  // jobs, first (three). Only a hint: the script re-checks all of it and answers 'retry'
  // when anything changed, and the completion then reads as without a hint. Bounded;
  // thread-safe.
  struct CompletionHint {
    std::string request_id, document, source, target, failure_code, claimer;
    int64_t token = 0;
    std::vector<std::string> job_ids;
    std::string forward_status;
  };
  class CompletionHints {
   public:
    static constexpr size_t kCapacity = 4096;
    void Put(const std::string& job_id, CompletionHint hint);
    // The hint of `job_id` for this claimer and token, removed; nullopt when none matches.
    std::optional<CompletionHint> Take(const std::string& job_id, int64_t token,
                                       const std::string& claimer);

   private:
    absl::Mutex mu_;
    absl::flat_hash_map<std::string, CompletionHint> hints_ ABSL_GUARDED_BY(mu_);
  };

 private:
  // The claim proper, without the idempotency ledger.
  void ClaimNow(const ClaimSpec& spec, absl::Time now, StoreCallback<v1::TranslationJob> done);

  common::RedisClient& redis_;
  const common::Sharding sharding_;
  // Shared with claims in flight, which may finish after the store is gone.
  std::shared_ptr<CompletionHints> hints_ = std::make_shared<CompletionHints>();
};

}  // namespace rogatory::routing
