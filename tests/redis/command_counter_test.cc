// tests/support's CommandCounter, which tests use to bound the Redis commands a component
// sends: it counts what ran between two moments, without the INFO it sends itself.

#include "gtest/gtest.h"
#include "redis_commands.h"
#include "redis_server.h"

namespace rogatory::testing {
namespace {

TEST(ParseCommandStatsTest, ReadsCallsPerCommand) {
  const CommandCalls calls = ParseCommandStats(
      "# Commandstats\r\n"
      "cmdstat_get:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n"
      "cmdstat_config|resetstat:calls=1,usec=5,usec_per_call=5.00\r\n"
      "cmdstat_broken\r\n");
  EXPECT_EQ(calls, (CommandCalls{{"get", 12}, {"config|resetstat", 1}}));
}

TEST(CommandCounterTest, CountsCommandsSinceItsSnapshotWithoutItsOwnInfo) {
  common::RedisClient& redis = SharedRedisClient();
  CommandCounter counter(redis);
  EXPECT_EQ(counter.Total(), 0);
  ASSERT_TRUE(common::RunRedisCommand(redis, {"SET", "rg:counter-test", "1"}).ok());
  ASSERT_TRUE(common::RunRedisCommand(redis, {"GET", "rg:counter-test"}).ok());
  ASSERT_TRUE(common::RunRedisCommand(redis, {"GET", "rg:counter-test"}).ok());
  ASSERT_TRUE(common::RunRedisCommand(redis, {"CONFIG", "GET", "maxmemory"}).ok());
  EXPECT_EQ(counter.Delta(), (CommandCalls{{"get", 2}, {"set", 1}}));
  EXPECT_EQ(counter.Total(), 3);
  counter.Snapshot();
  EXPECT_EQ(counter.Total(), 0);
  ASSERT_TRUE(common::RunRedisCommand(redis, {"DEL", "rg:counter-test"}).ok());
  EXPECT_EQ(counter.Total(), 1);
}

}  // namespace
}  // namespace rogatory::testing
