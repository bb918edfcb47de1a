#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "redis_server.h"
#include "rogatory/common/cluster_redis_client.h"

namespace rogatory::testing {

// A real Redis Cluster on loopback for one test binary: six redis-servers (free ports,
// cluster-node-timeout 1500 ms), made three primaries with one replica each by
// `redis-cli --cluster create --cluster-replicas 1`. Never skips: the test fails if the
// cluster does not form.
class RedisCluster {
 public:
  static constexpr int kNodes = 6;
  RedisCluster();
  ~RedisCluster();

  // redis://127.0.0.1:p1,...,127.0.0.1:p6/0: every node a seed.
  std::string url() const;
  RedisServer& node(int i) { return *nodes_[i]; }
  // The node (index) that is the primary of `slot` now, as the live nodes see it; -1 if none.
  int PrimaryOf(int slot) const;
  int PrimaryOfKey(const std::string& key) const;
  // The replica (index) of primary `primary`; -1 if none.
  int ReplicaOf(int primary) const;
  // The indexes of the primaries that own slots.
  std::vector<int> Primaries() const;
  // Waits until every live node says cluster_state:ok and agrees on who owns every slot;
  // false if not within `within`.
  bool AwaitHealthy(absl::Duration within = absl::Seconds(30)) const;
  // Moves `slot` from its primary to primary `to` with SETSLOT IMPORTING/MIGRATING, MIGRATE
  // of its keys and SETSLOT NODE, as redis-cli --cluster reshard does. The steps are
  // separate so a test can stop in the middle, where the source answers ASK for the keys
  // it no longer has.
  void BeginSlotMove(int slot, int to);
  // MIGRATEs the slot's keys that are still on its source (up to `count`; all by default).
  void MigrateKeys(int slot, int count = 1000);
  void EndSlotMove(int slot, int to);
  // Brings back a killed node (Start) and waits for the cluster to be healthy again.
  void Restart(int i);
  // The node's id in the cluster.
  std::string NodeId(int i) const;

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
  int moving_from_ = -1;
};

// A cluster client on `cluster` (its seeds), with the given node options (command timeout
// 5 s by default), that has answered PING.
std::unique_ptr<common::RedisClient> ClusterClient(
    const RedisCluster& cluster, common::AsyncRedisOptions node_options = TestClientOptions(),
    absl::Duration retry_budget = absl::Seconds(3));

// One cluster and a cluster client on it, shared by the tests of one binary (started at
// first use). A store contract suite runs on it with OnCluster<F> as its factory: its
// Make() makes SharedRedisClient() the cluster client for the rest of the test.
RedisCluster& SharedRedisCluster();
common::RedisClient& SharedClusterClient();
void UseClusterForThisTest();

template <typename Factory>
struct OnCluster : Factory {
  static auto Make() {
    UseClusterForThisTest();
    return Factory::Make();
  }
};

}  // namespace rogatory::testing
