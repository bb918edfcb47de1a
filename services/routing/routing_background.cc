#include "routing_background.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "rogatory/common/await.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/replica_lease.h"

namespace rogatory::routing {
namespace {

template <typename T, typename Fn>
absl::StatusOr<T> Wait(Fn&& call) {
  return common::AwaitCallback<absl::StatusOr<T>>(std::forward<Fn>(call));
}

}  // namespace

RoutingBackground::RoutingBackground(RoutingStore& store, common::RedisClient& redis,
                                     common::Sharding sharding, const common::Clock& clock,
                                     RoutingMetrics& metrics, int max_attempts,
                                     absl::Duration sweep_interval, absl::Duration metrics_interval)
    : store_(store),
      redis_(redis),
      sharding_(sharding),
      clock_(clock),
      metrics_(metrics),
      max_attempts_(max_attempts),
      lease_ttl_(3 * std::max(sweep_interval, metrics_interval)),
      replica_id_(common::NewUlid(clock.Now())) {
  sweeper_ = std::make_unique<common::PeriodicTask>(sweep_interval, [this] { SweepRound(); });
  gauges_ =
      std::make_unique<common::PeriodicTask>(metrics_interval, [this] { RefreshGaugesOnce(); });
}

std::pair<int, int> RoutingBackground::SweepOnce() {
  int expired = 0, dead = 0;
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
    // Bounded batches; a shard with a backlog of expiries is drained over a few rounds.
    auto r = Wait<SweepResult>([&](StoreCallback<SweepResult> cb) {
      store_.SweepExpiredLeases(shard, max_attempts_, 200, clock_.Now(), std::move(cb));
    });
    if (!r.ok()) {
      common::Log::Warn("lease sweep failed",
                        {{"shard", shard}, {"error", std::string(r.status().message())}});
      continue;
    }
    expired += r->expired;
    dead += r->dead_lettered;
  }
  if (expired > 0) {
    metrics_.LeasesExpired(expired);
    metrics_.DeadLettered(dead);
    common::Log::Info("translation leases expired",
                      {{"expired", expired}, {"dead_lettered", dead}});
  }
  return {expired, dead};
}

bool RoutingBackground::HoldLease() {
  return common::HoldReplicaLease(redis_,
                                  absl::StrCat(common::Sharding::Prefix(0), "rt:metrics-leader"),
                                  replica_id_, lease_ttl_);
}

bool RoutingBackground::SweepRound() {
  if (!HoldLease()) return false;
  SweepOnce();
  return true;
}

bool RoutingBackground::RefreshGaugesOnce() {
  if (!HoldLease()) {
    metrics_.SetQueueState(nullptr, clock_.Now());
    return false;
  }
  std::vector<ShardStats> all;
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
    auto s =
        Wait<ShardStats>([&](StoreCallback<ShardStats> cb) { store_.Stats(shard, std::move(cb)); });
    if (!s.ok()) return true;  // keep the last values rather than export a partial sum
    all.push_back(*std::move(s));
  }
  metrics_.SetQueueState(&all, clock_.Now());
  return true;
}

}  // namespace rogatory::routing
