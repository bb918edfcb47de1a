#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rogatory/common/access.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/routing/v1/routing.pb.h"

namespace rogatory::routing {

template <typename T>
using StoreCallback = std::function<void(absl::StatusOr<T>)>;
using Outcome = common::EventHandler::Outcome;

// What ClaimTranslationJob asks for.
struct ClaimSpec {
  std::string claimer;                                     // authority id of the translator
  std::vector<std::pair<std::string, std::string>> pairs;  // (source, target) languages
  absl::Duration lease;
  // The caller's idempotency key (ClaimTranslationJobRequest.request_id), or empty. A
  // repeated claim with the same key returns the job the first one claimed (as it is now);
  // one still in progress answers ABORTED (retry).
  std::string request_id;
};

struct CompleteResult {
  v1::TranslationJob job;
  bool replayed = false;      // the same completion was presented again
  bool request_done = false;  // this completion finished the request's last job
  absl::Duration turnaround;  // from queueing to completion
};

struct FailResult {
  v1::TranslationJob job;
  bool replayed = false;
  bool dead_lettered = false;
};

struct SweepResult {
  int expired = 0;        // leases that ran out; their jobs were queued again or dead-lettered
  int dead_lettered = 0;  // of those, jobs out of attempts
};

// Per language pair, for the queue metrics.
struct PairStats {
  std::string source;
  std::string target;
  int64_t depth = 0;
  std::optional<absl::Time> oldest;  // creation time of the oldest queued job
};
struct ShardStats {
  std::vector<PairStats> pairs;
  int64_t dead_letters = 0;
  int64_t unroutable = 0;
};

// A position in a queue listing: after the job `id` of queue score `score` (urgency band,
// then due time), in (score, id) order.
struct QueueCursor {
  int64_t score = 0;
  std::string id;
};

// What a translator's queue listing asks for (ListTranslationJobs with a queue).
struct QueueListSpec {
  bool held = false;   // false: queued jobs a claim could take; true: jobs `holder` holds
  std::string holder;  // authority id of the translator, for `held`
  std::vector<std::string> sources;                               // source languages; empty for all
  std::vector<std::string> targets;                               // target languages; empty for all
  common::v1::Urgency urgency = common::v1::URGENCY_UNSPECIFIED;  // unspecified for all
  std::optional<absl::Time> due_before;                           // only jobs due at or before
  int page_size = 50;
  std::optional<QueueCursor> after;  // from a previous page
};

struct QueueListPage {
  std::vector<v1::TranslationJob> jobs;  // in claim order: urgency, due time, id
  std::optional<QueueCursor> next;       // set when more follow
};

// The routing service's state: decisions, documents, translation jobs, their queues and
// leases, in the shard of the request they belong to. Every change is one atomic step and
// writes the events announcing it to the service's outbox in that same step. Event effects
// take the receiver's Dedupe marker and answer kDuplicate for a repeat. Errors: NOT_FOUND
// for a missing decision or job, FAILED_PRECONDITION for a stale lease token or a job not
// held, PERMISSION_DENIED when another translator holds the job, ALREADY_EXISTS for a
// replayed completion with a different document, UNAVAILABLE when the store is down.
class RoutingStore {
 public:
  virtual ~RoutingStore() = default;

  // Stores `decision` for the trigger's request (replacing an earlier one), emits
  // ROUTING_DECIDED with `status` (UNSPECIFIED: none) and, when a translation is needed,
  // queues one job per known document in the source language (cancelling queued jobs into
  // another target). Unroutable decisions are listed for a person.
  virtual void RecordDecision(const common::v1::Event& trigger, const v1::RoutingDecision& decision,
                              common::v1::RequestStatus status, const common::Dedupe& dedupe,
                              absl::Time now, StoreCallback<Outcome> done) = 0;
  // Remembers a document; queues its job if the request's decision needs it translated.
  virtual void AddDocument(const common::v1::Event& trigger, const common::Dedupe& dedupe,
                           absl::Time now, StoreCallback<Outcome> done) = 0;
  // Sets (due set) or removes (due unset) one deadline of the request and re-orders its
  // queued jobs by the earliest remaining one.
  virtual void UpdateDeadline(const common::v1::Event& trigger, std::optional<absl::Time> due,
                              const common::Dedupe& dedupe, StoreCallback<Outcome> done) = 0;
  // The request ended (withdrawn, refused, closed): its pending jobs are cancelled.
  virtual void EndRequest(const common::v1::Event& trigger, const common::Dedupe& dedupe,
                          absl::Time now, StoreCallback<Outcome> done) = 0;
  // Retention: intake erased the request (REQUEST_ERASED); everything routing keeps about
  // it (decision, documents, deadlines, jobs and their queue entries) is deleted.
  virtual void EraseRequest(const common::v1::Event& trigger, const common::Dedupe& dedupe,
                            absl::Time now, StoreCallback<Outcome> done) = 0;

  virtual void GetDecision(const std::string& request_id,
                           StoreCallback<v1::RoutingDecision> done) = 0;
  // Need-to-know: the parties of a request, recorded from the RequestFacts of every event
  // received about it (in the same receiver script), the routing decision's competent
  // authority standing as executing authority until intake's facts name one. nullopt when
  // routing has received nothing about the request.
  virtual void GetParties(const std::string& request_id,
                          StoreCallback<std::optional<common::RequestParties>> done) = 0;
  virtual void GetJob(const std::string& job_id, StoreCallback<v1::TranslationJob> done) = 0;
  // The jobs of one request (bounded by its documents).
  virtual void ListJobsOfRequest(const std::string& request_id,
                                 StoreCallback<std::vector<v1::TranslationJob>> done) = 0;

  // Claims the most urgent queued job of the given pairs, across shards (each tried at
  // most once). NOT_FOUND when none is queued.
  virtual void Claim(const ClaimSpec& spec, absl::Time now,
                     StoreCallback<v1::TranslationJob> done) = 0;
  // Extends a held lease; `lease` zero keeps the claim's length.
  virtual void Heartbeat(const std::string& job_id, int64_t token, const std::string& claimer,
                         absl::Duration lease, absl::Time now,
                         StoreCallback<v1::TranslationJob> done) = 0;
  virtual void Complete(const std::string& job_id, int64_t token, const std::string& claimer,
                        const std::string& translated_document_id, const std::string& sha256,
                        absl::Time now, StoreCallback<CompleteResult> done) = 0;
  // A retryable failure queues the job again while it has attempts left
  // (`max_attempts` claims); otherwise it goes to the dead-letter list.
  virtual void Fail(const std::string& job_id, int64_t token, const std::string& claimer,
                    const std::string& failure_code, bool retryable, int max_attempts,
                    absl::Time now, StoreCallback<FailResult> done) = 0;

  // Returns the jobs of one shard whose leases ran out to their queues (or the dead-letter
  // list once out of attempts). Handles at most `limit` per call.
  virtual void SweepExpiredLeases(int shard, int max_attempts, int limit, absl::Time now,
                                  StoreCallback<SweepResult> done) = 0;
  virtual void Stats(int shard, StoreCallback<ShardStats> done) = 0;

  // A page of a translator's queue across shards, served from the per-shard, per-language-
  // pair queues (claimable) or the holder's index (held): never a scan of all jobs.
  virtual void ListQueue(const QueueListSpec& spec, StoreCallback<QueueListPage> done) = 0;
};

}  // namespace rogatory::routing
