#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "rogatory/common/ids.h"
#include "routing_store.h"

namespace rogatory::routing {

// RoutingStore in memory: the fake for unit tests of the service and its event handler, held
// to the same contract as RedisRoutingStore (tests/support/routing_store_contract.h). It
// keeps the events it emits (what Redis's outbox would hold) for tests to read. Dedupe
// markers never expire. Thread-safe; callbacks run on the caller's thread, after the lock is
// released.
class InMemoryRoutingStore final : public RoutingStore {
 public:
  explicit InMemoryRoutingStore(common::Sharding sharding);

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
  void GetParties(const std::string& request_id,
                  StoreCallback<std::optional<common::RequestParties>> done) override;
  void GetJob(const std::string& job_id, StoreCallback<v1::TranslationJob> done) override;
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

  // The events emitted about a request, in order (with their sequence numbers).
  std::vector<common::v1::Event> EventsOf(const std::string& request_id) const;

 private:
  struct Job {
    std::string id, rid, doc, src, tgt;
    v1::TranslationJobStatus status = v1::TRANSLATION_JOB_STATUS_QUEUED;
    common::v1::Urgency urgency = common::v1::URGENCY_UNSPECIFIED;
    int64_t due = 0;  // ms; kNoDue for none
    int attempts = 0;
    int64_t token = 0;
    std::string by;           // the holder while claimed
    std::string last_holder;  // who claimed it last
    int64_t lease_exp = 0, lease_ms = 0;
    std::string tdoc, tsha, fcode;
    int64_t created = 0, updated = 0;
    int64_t done_token = -1;
    std::string done_kind;
  };
  struct Request {
    bool decided = false;
    v1::RoutingDecision decision;
    bool need = false;
    std::string src, tgt;
    common::v1::Urgency urgency = common::v1::URGENCY_UNSPECIFIED;
    common::v1::Event event_template;
    int forward_status = 0;
    std::optional<int64_t> due;  // the earliest deadline once any deadline event arrived
    bool ended = false;
    std::map<std::string, std::string> documents;  // id -> language
    std::map<std::string, int64_t> deadlines;      // id -> due ms
    std::set<std::string> jobs;
    std::optional<common::RequestParties> parties;
    int64_t sequence = 0;
  };

  int64_t DueOf(const Request& r) const;
  static int64_t Score(const Job& j);
  bool SeenOrMark(const common::Dedupe& dedupe) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordParties(const std::string& rid, const common::RequestParties& p)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Emit(const std::string& rid, common::v1::EventType type, absl::Time now,
            const common::v1::Actor& actor, const std::string& reason, int status, const Job* job,
            const common::v1::Event* payload = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Creates the job of (request, document) for the decision's target unless it exists.
  bool CreateJob(const std::string& rid, Request& r, const std::string& doc, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::TranslationJob ToProto(const Job& j) const;
  // nullopt when held by `claimer` under `token` and unexpired, else the error.
  absl::Status CheckLease(const Job* j, int64_t token, const std::string& claimer,
                          absl::Time now) const;
  int ShardOfJob(const std::string& job_id) const;

  const common::Sharding sharding_;
  mutable absl::Mutex mu_;
  std::set<std::string> seen_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Request> requests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> dead_ ABSL_GUARDED_BY(mu_);          // job id -> when
  std::map<std::string, int64_t> unroutable_ ABSL_GUARDED_BY(mu_);    // request id -> when
  std::set<std::pair<int, std::string>> pairs_ ABSL_GUARDED_BY(mu_);  // (shard, "src>tgt")
  std::map<std::string, std::string> claim_ledger_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<common::v1::Event>> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::routing
