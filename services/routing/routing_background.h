#pragma once

#include <memory>
#include <string>

#include "rogatory/common/clock.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/periodic_task.h"
#include "rogatory/common/redis.h"
#include "routing_metrics.h"
#include "routing_store.h"

namespace rogatory::routing {

// Background upkeep, on its own threads (blocking Redis calls are fine here, never on gRPC's
// threads), done by one replica at a time: the one holding the background lease
// (rg:{s0}:rt:metrics-leader, renewed each round); the others send Redis only the lease
// command of each round (issue 19: only the lease holder touches Redis for a background task).
//  - the lease sweeper: every `sweep_interval` (>= 5 s in deployments: a lease runs minutes,
//    its expiry is noticed at most that late), each shard's expired leases return their jobs
//    to the queue (or the dead-letter list once out of attempts). The scripts are atomic, so
//    two sweepers for a moment (a lease handover) never return a job twice.
//  - the queue gauges: every `metrics_interval`, the holder exports queue depth, oldest job
//    age, dead letters and unroutable requests; the others export none, so nothing is counted
//    twice.
class RoutingBackground {
 public:
  RoutingBackground(RoutingStore& store, common::RedisClient& redis, common::Sharding sharding,
                    const common::Clock& clock, RoutingMetrics& metrics, int max_attempts,
                    absl::Duration sweep_interval, absl::Duration metrics_interval);

  // One sweep of every shard; returns (expired, dead-lettered). Exposed for tests.
  std::pair<int, int> SweepOnce();
  // One round of the sweeper: the background lease and, when held, SweepOnce. Returns whether
  // the lease is held.
  bool SweepRound();
  // One round of the metrics lease and, when held, the gauges. Returns whether it is held.
  bool RefreshGaugesOnce();

 private:
  RoutingStore& store_;
  common::RedisClient& redis_;
  const common::Sharding sharding_;
  const common::Clock& clock_;
  RoutingMetrics& metrics_;
  const int max_attempts_;
  const absl::Duration lease_ttl_;
  const std::string replica_id_;
  bool HoldLease();
  std::unique_ptr<common::PeriodicTask> sweeper_;
  std::unique_ptr<common::PeriodicTask> gauges_;
};

}  // namespace rogatory::routing
