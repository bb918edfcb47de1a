// HoldReplicaLease on a real redis-server: one holder at a time, renewal by the holder,
// takeover once the holder stops renewing.
#include "rogatory/common/replica_lease.h"

#include <chrono>
#include <thread>

#include "gtest/gtest.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"

namespace rogatory::common {
namespace {

TEST(ReplicaLeaseTest, OneHolderAtATimeRenewedByItAndTakenOverWhenItStops) {
  testing::RedisServer server;
  auto redis = rogatory::testing::ConnectedClient(server);
  const std::string key = "rg:{s0}:test:lease";
  EXPECT_TRUE(HoldReplicaLease(*redis, key, "a", absl::Seconds(30)));
  EXPECT_FALSE(HoldReplicaLease(*redis, key, "b", absl::Seconds(30)));
  EXPECT_TRUE(HoldReplicaLease(*redis, key, "a", absl::Milliseconds(300)));  // renewed
  EXPECT_EQ(RunRedisCommand(*redis, {"GET", key})->str, "a");
  // "a" stops renewing: "b" gets it once the lease has run out, and then "a" does not.
  bool taken = false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!taken && std::chrono::steady_clock::now() < until) {
    taken = HoldReplicaLease(*redis, key, "b", absl::Seconds(30));
    if (!taken) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(taken);
  EXPECT_FALSE(HoldReplicaLease(*redis, key, "a", absl::Seconds(30)));
}

}  // namespace
}  // namespace rogatory::common
