// The one-node Redis Cluster fixture (issue 17, item 8): what Redis Cluster refuses, and
// that common's scripts run on it. Store contract suites instantiate on it the same way.

#include "gtest/gtest.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/data_layout.h"
#include "rogatory/common/replica_lease.h"
#include "test_lua_scripts.h"

namespace rogatory::common {
namespace {

class OneNodeClusterTest : public ::testing::Test {
 protected:
  void SetUp() override { redis_ = rogatory::testing::ConnectedClient(server_); }
  RedisClient& redis() { return *redis_; }

  testing::RedisServer server_{testing::RedisServer::Mode::kOneNodeCluster};
  std::unique_ptr<RedisClient> redis_;
};

TEST_F(OneNodeClusterTest, RefusesAScriptWhoseKeysSpanSlotsAndRunsOneInASlot) {
  ASSERT_NE(server_.Cli("CLUSTER INFO").find("cluster_state:ok"), std::string::npos);
  const LuaScript two_keys{std::string(test_lua::kTwoKeysProbe)};
  auto cross = RunRedisScript(redis(), two_keys, {"rg:{s1}:a", "rg:{s2}:b"}, {});
  ASSERT_FALSE(cross.ok());
  EXPECT_NE(std::string(cross.status().message()).find("CROSSSLOT"), std::string::npos)
      << cross.status();
  auto same = RunRedisScript(redis(), two_keys, {"rg:{s1}:a", "rg:{s1}:b"}, {});
  EXPECT_TRUE(same.ok()) << same.status();
}

TEST_F(OneNodeClusterTest, CatchesAnUndeclaredKeyOfAnotherSlotButNotOfTheSameSlot) {
  const LuaScript undeclared{std::string(test_lua::kUndeclaredKeyProbe)};
  // Another slot: Redis refuses. The same slot: Redis runs it, which is why
  // tools/lint/lua_scripts.py checks that every key comes from KEYS.
  EXPECT_FALSE(RunRedisScript(redis(), undeclared, {"rg:{s1}:a"}, {"rg:{s2}:b"}).ok());
  EXPECT_TRUE(RunRedisScript(redis(), undeclared, {"rg:{s1}:a"}, {"rg:{s1}:b"}).ok());
}

TEST_F(OneNodeClusterTest, CommonScriptsRunOnIt) {
  absl::Status claimed =
      ClaimDataLayout(redis(), {kDataLayoutVersion, 16}, "test", absl::FromUnixSeconds(1767225600));
  EXPECT_TRUE(claimed.ok()) << claimed;
  EXPECT_EQ(**ReadDataLayout(redis()), (DataLayout{kDataLayoutVersion, 16}));
  EXPECT_TRUE(HoldReplicaLease(redis(), "rg:{s0}:test:lease", "a", absl::Seconds(30)));
  EXPECT_FALSE(HoldReplicaLease(redis(), "rg:{s0}:test:lease", "b", absl::Seconds(30)));
}

}  // namespace
}  // namespace rogatory::common
