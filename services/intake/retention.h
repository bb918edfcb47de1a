#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "document_store.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"
#include "request_store.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/periodic_task.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/redis.h"

namespace rogatory::intake {

// How long intake keeps what (settings of rogatory-intake; see main.cc).
struct RetentionSettings {
  // From the time a request reached a final status (executed, refused, withdrawn,
  // closed...) to the erasure of its personal data (step 1).
  absl::Duration closed = absl::Hours(24 * 730);
  // From step 1 to the erasure of the tombstone, its history and index entries (step 2).
  absl::Duration tombstone = absl::Hours(24 * 365 * 5);
  // Requests examined per kind and shard in one pass of the sweep loop.
  int batch = 100;
};

// The statuses a request never leaves in substance (Lifecycle::IsOpen false), per
// instrument, as ",<instrument>:<status>,..." for the Redis scripts.
const std::string& FinalStatusesText();
// Whether `status` is final for `instrument` (Lifecycle::IsOpen false).
bool IsFinalStatus(common::v1::Instrument instrument, common::v1::RequestStatus status);

// What step 1 keeps of a request: id, status, instrument, urgency, the issuing and executing
// authorities (id, state, region: no display names), requested state, language, legal
// basis, creation and update times, etag and trace id. Everything else (subjects,
// identifiers, issuer reference, statement of facts, offences, measures, details,
// safeguards, missing elements) is personal data or may hold it, and goes.
v1::Request MakeTombstone(const v1::Request& request);

// Counters of erasures (no personal data in labels):
//   rogatory_intake_erasures_total{step}          personal_data | request
//   rogatory_intake_erasure_failures_total{step}  the same, plus audit (retried next pass)
class RetentionMetrics {
 public:
  explicit RetentionMetrics(prometheus::Registry& registry);
  void Erased(ErasureStep step);
  void Failed(const std::string& step);

 private:
  prometheus::Family<prometheus::Counter>* erased_;
  prometheus::Family<prometheus::Counter>* failed_;
};

// The retention sweeper: erases closed requests once their periods ran out, personal data
// first (see RequestStore). Each erasure is one atomic, idempotent step, so a sweeper killed
// at any point resumes on its next pass; each leaves a pending-audit mark cleared only once
// the erasure is recorded through the Auditor (caller "rogatory-intake", is_service), so
// every erasure is audited at least once. Several replicas may sweep at once without harm
// (the steps are guarded), but `leader` (a lease) keeps it to one.
// SweepOnce blocks: run it on a background thread (Start) or in tests.
class RetentionSweeper {
 public:
  struct Stats {
    int personal_erased = 0;
    int requests_erased = 0;
    int audits_recorded = 0;
    int failures = 0;
  };

  RetentionSweeper(RequestStore& store, DocumentStore* documents, common::Auditor& auditor,
                   const common::Clock& clock, RetentionSettings settings,
                   RetentionMetrics* metrics = nullptr, std::function<bool()> leader = nullptr);

  // One pass: records pending audits, then erases what is due, until nothing is due (or a
  // bounded number of rounds). Returns what it did.
  Stats SweepOnce();

  // Sweeps every `interval` on a background thread until stopped or destroyed.
  void Start(absl::Duration interval);
  // Stops the thread (waits for a sweep under way). Before Redis goes.
  void Stop() { task_.reset(); }

 private:
  absl::Status Audit(const PendingErasureAudit& audit);
  absl::StatusOr<bool> EraseStep1(const std::string& id, int64_t closed_before_ms);

  RequestStore& store_;
  DocumentStore* documents_;
  common::Auditor& auditor_;
  const common::Clock& clock_;
  RetentionSettings settings_;
  RetentionMetrics* metrics_;
  std::function<bool()> leader_;
  std::unique_ptr<common::PeriodicTask> task_;
};

// A lease on rg:{s0}:intake:retention-lease so that one replica sweeps at a time: true
// while this replica holds it (taken or renewed for `ttl`). Blocking; background threads
// only.
bool HoldRetentionLease(common::RedisClient& redis, const std::string& replica_id,
                        absl::Duration ttl);

}  // namespace rogatory::intake
