#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/periodic_task.h"
#include "rogatory/common/redis.h"
#include "rogatory/common/v1/types.pb.h"

namespace rogatory::intake {

// Intake's business metrics (labels are codes, never personal data):
//   rogatory_intake_submissions_rejected_total{reason}   malformed | idempotency_conflict |
//                                                        unavailable | other
//   rogatory_intake_time_to_acknowledgment_seconds{instrument}  submission -> ACKNOWLEDGED
//   rogatory_intake_time_to_decision_seconds{instrument,decision}  submission -> the
//       recognition or surrender decision (RECOGNISED, REFUSED, FINAL_DECISION)
// Observed by the replica that applied the change, so they add up across replicas.
class IntakeMetrics {
 public:
  explicit IntakeMetrics(prometheus::Registry& registry);

  void SubmissionRejected(const std::string& reason);
  // Records the time from submission to a status the request just reached, if it is an
  // acknowledgment or a decision.
  void StatusReached(common::v1::Instrument instrument, common::v1::RequestStatus status,
                     absl::Duration since_submission);

 private:
  prometheus::Family<prometheus::Counter>* rejected_;
  prometheus::Family<prometheus::Histogram>* to_ack_;
  prometheus::Family<prometheus::Histogram>* to_decision_;
};

// rogatory_intake_requests{instrument,status}: how many requests are in each status, a
// gauge of shared state. Read from each shard's request counts (rg:{sN}:counts, which the
// scripts that create, change and erase requests keep: one HGETALL per shard, no recount;
// issue 19) by ONE replica at a time, the holder of
// a lease (rg:{s0}:intake:gauge-lease, renewed each refresh); the other replicas export
// nothing, so sum() or max() across replicas never double counts. Runs on its own thread
// (blocking Redis calls are allowed there).
class RequestCountGauge {
 public:
  RequestCountGauge(common::RedisClient& redis, common::Sharding sharding,
                    prometheus::Registry& registry, std::string replica_id,
                    absl::Duration interval);
  // Refreshes once now (tests); returns whether this replica holds the lease.
  bool RefreshOnce();
  // Starts refreshing every interval on a background thread.
  void Start();
  // Stops the thread (waits for a refresh under way). Before Redis goes.
  void Stop() { task_.reset(); }

 private:
  common::RedisClient& redis_;
  common::Sharding sharding_;
  prometheus::Family<prometheus::Gauge>* family_;
  std::string replica_id_;
  absl::Duration interval_;
  std::unique_ptr<common::PeriodicTask> task_;
};

}  // namespace rogatory::intake
