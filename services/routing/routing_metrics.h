#pragma once

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "routing_store.h"

namespace rogatory::routing {

// The service's business metrics. Counters count what this replica did; the gauges describe
// shared state (queues in Redis) and are exported only by the replica that holds the
// metrics lease (see RoutingBackground), so a sum over replicas never double counts.
// Labels are language tags only: no request or person data. Thread-safe.
class RoutingMetrics {
 public:
  explicit RoutingMetrics(prometheus::Registry& registry);

  void Claimed() { claims_->Increment(); }
  void Completed(absl::Duration turnaround);
  void LeasesExpired(int n) { lease_expiries_->Increment(n); }
  void DeadLettered(int n) { dead_letters_->Increment(n); }
  void Unroutable() { unroutable_->Increment(); }

  // Replaces the queue gauges with `stats` summed over shards (the lease holder), or
  // removes them (`stats` null: another replica exports them).
  void SetQueueState(const std::vector<ShardStats>* stats, absl::Time now);

 private:
  prometheus::Counter* claims_;
  prometheus::Counter* completions_;
  prometheus::Counter* lease_expiries_;
  prometheus::Counter* dead_letters_;
  prometheus::Counter* unroutable_;
  prometheus::Histogram* turnaround_;
  prometheus::Family<prometheus::Gauge>* depth_family_;
  prometheus::Family<prometheus::Gauge>* age_family_;
  prometheus::Family<prometheus::Gauge>* dead_family_;
  prometheus::Family<prometheus::Gauge>* unroutable_family_;
  absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::pair<prometheus::Gauge*, prometheus::Gauge*>>
      pair_gauges_ ABSL_GUARDED_BY(mu_);
  prometheus::Gauge* dead_gauge_ ABSL_GUARDED_BY(mu_) = nullptr;
  prometheus::Gauge* unroutable_gauge_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace rogatory::routing
