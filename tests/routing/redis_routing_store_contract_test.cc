// The RoutingStore contract on a real redis-server.

#include "redis_cluster.h"
#include "redis_routing_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "routing_store_contract.h"

namespace rogatory::testing {
namespace {

common::RedisClient& Client() { return SharedRedisClient(); }

struct RedisFactory {
  static std::unique_ptr<routing::RoutingStore> Make() {
    EXPECT_TRUE(common::RunRedisCommand(Client(), {"FLUSHALL"}).ok());
    return std::make_unique<routing::RedisRoutingStore>(Client(), common::Sharding(Shards()));
  }
  static int Shards() { return 16; }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, RoutingStoreContractTest, RedisFactory);
INSTANTIATE_TYPED_TEST_SUITE_P(OneNodeCluster, RoutingStoreContractTest,
                               OnOneNodeCluster<RedisFactory>);
// On a real cluster of three primaries (label cluster: see rogatory_cluster_variant).
INSTANTIATE_TYPED_TEST_SUITE_P(Cluster, RoutingStoreContractTest, OnCluster<RedisFactory>);

}  // namespace
}  // namespace rogatory::testing
