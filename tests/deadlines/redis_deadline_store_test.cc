// The DeadlineStore contract on a real redis-server.
#include "redis_deadline_store.h"

#include "deadline_store_contract.h"
#include "declared_emits.h"
#include "redis_cluster.h"
#include "redis_fixture.h"
#include "redis_server.h"

namespace rogatory::testing {
namespace {

common::RedisClient& Client() { return SharedRedisClient(); }

struct RedisFactory {
  static std::unique_ptr<deadlines::DeadlineStore> Make() {
    EXPECT_TRUE(common::RunRedisCommand(Client(), {"FLUSHALL"}).ok());
    return std::make_unique<deadlines::RedisDeadlineStore>(Client(), common::Sharding(Shards()));
  }
  // The shard's outbox stream, oldest first.
  static std::vector<common::v1::Event> Outbox(deadlines::DeadlineStore&, int shard) {
    std::vector<common::v1::Event> out;
    auto r = common::RunRedisCommand(
        Client(), {"XRANGE", common::EventKeys::Outbox(shard, deadlines::kEventSource), "-", "+"});
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return out;
    for (const auto& entry : r->elements) {
      const auto& fields = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str != common::kOutboxEventField) continue;
        common::v1::Event e;
        EXPECT_TRUE(e.ParseFromString(fields[i + 1].str));
        out.push_back(std::move(e));
      }
    }
    return out;
  }
  static int Shards() { return 4; }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, DeadlineStoreContractTest, RedisFactory);
INSTANTIATE_TYPED_TEST_SUITE_P(OneNodeCluster, DeadlineStoreContractTest,
                               OnOneNodeCluster<RedisFactory>);
// On a real cluster of three primaries (label cluster: see rogatory_cluster_variant).
INSTANTIATE_TYPED_TEST_SUITE_P(Cluster, DeadlineStoreContractTest, OnCluster<RedisFactory>);

}  // namespace
}  // namespace rogatory::testing
