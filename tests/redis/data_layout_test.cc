// The data layout record and rogatory-migrate's Apply against a real redis-server.
#include "rogatory/common/data_layout.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "migrations.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;

class DataLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override { redis_ = rogatory::testing::ConnectedClient(server_); }
  RedisClient& redis() { return *redis_; }
  void Set(const std::string& key) {
    ASSERT_TRUE(RunRedisCommand(redis(), {"SET", key, "1"}).ok());
  }

  const absl::Time now_ = absl::FromUnixSeconds(1767225600);
  testing::RedisServer server_;
  std::unique_ptr<RedisClient> redis_;
};

TEST_F(DataLayoutTest, FirstClaimRecordsThenTheSameLayoutPassesAndAnotherIsRefused) {
  EXPECT_FALSE(ReadDataLayout(redis())->has_value());
  ASSERT_TRUE(ClaimDataLayout(redis(), {1, 16}, "rogatory-intake", now_).ok());
  EXPECT_EQ(**ReadDataLayout(redis()), (DataLayout{1, 16}));
  EXPECT_TRUE(ClaimDataLayout(redis(), {1, 16}, "rogatory-routing", now_).ok());

  absl::Status other_shards = ClaimDataLayout(redis(), {1, 8}, "rogatory-routing", now_);
  EXPECT_EQ(other_shards.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other_shards.message()), HasSubstr("16 shards"));
  EXPECT_THAT(std::string(other_shards.message()), HasSubstr("redis-shards is 8"));

  ASSERT_TRUE(WriteDataLayout(redis(), {2, 16}, "test", now_).ok());
  absl::Status newer = ClaimDataLayout(redis(), {1, 16}, "rogatory-intake", now_);
  EXPECT_EQ(newer.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(newer.message()), HasSubstr("older than the data"));
  EXPECT_EQ(**ReadDataLayout(redis()), (DataLayout{2, 16}));  // untouched
}

TEST_F(DataLayoutTest, RequestDataWithoutARecordIsRefusedAndOtherKeysAreNotData) {
  Set("rg:health:intake");
  Set("rg:{meta}:other");
  ASSERT_TRUE(ClaimDataLayout(redis(), {1, 4}, "rogatory-intake", now_).ok());
  ASSERT_TRUE(RunRedisCommand(redis(), {"DEL", kDataLayoutKey}).ok());

  Set("rg:{s2}:request:r-2");
  absl::Status refused = ClaimDataLayout(redis(), {1, 4}, "rogatory-intake", now_);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("rogatory-migrate"));
  EXPECT_FALSE(ReadDataLayout(redis())->has_value());
}

TEST_F(DataLayoutTest, HighestShardInUseWalksEveryKey) {
  EXPECT_FALSE(HighestShardInUse(redis())->has_value());
  for (int i = 0; i < 3000; ++i) Set("rg:{s1}:k" + std::to_string(i));  // several SCAN pages
  Set("rg:{s12}:x");
  Set("rg:{sx}:not-a-shard");
  EXPECT_EQ(**HighestShardInUse(redis()), 12);
}

TEST_F(DataLayoutTest, MigrateRecordsUnversionedDataThatFitsAndRefusesWhatDoesNot) {
  Set("rg:{s3}:request:r-3");
  auto too_few = migrate::Apply(redis(), 2, /*dry_run=*/false, now_);
  EXPECT_EQ(too_few.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(too_few.status().message()), HasSubstr("shard 3"));

  auto dry = migrate::Apply(redis(), 4, /*dry_run=*/true, now_);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_EQ(dry->steps.size(), 1u);
  EXPECT_FALSE(ReadDataLayout(redis())->has_value());

  auto applied = migrate::Apply(redis(), 4, /*dry_run=*/false, now_);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_FALSE(applied->before.has_value());
  EXPECT_EQ(applied->after, (DataLayout{kDataLayoutVersion, 4}));
  EXPECT_EQ(**ReadDataLayout(redis()), (DataLayout{kDataLayoutVersion, 4}));
  EXPECT_TRUE(ClaimDataLayout(redis(), {kDataLayoutVersion, 4}, "rogatory-intake", now_).ok());

  auto again = migrate::Apply(redis(), 4, /*dry_run=*/false, now_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->steps.empty());
  EXPECT_EQ(migrate::Apply(redis(), 8, false, now_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace rogatory::common
