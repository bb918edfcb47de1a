// The data layout record and rogatory-migrate's Apply against a real redis-server.
#include "rogatory/common/data_layout.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "intake_fixtures.h"
#include "migrations.h"
#include "redis_request_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/redis_reply.h"

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
  // Record the layout, then one step per version after it.
  EXPECT_EQ(dry->steps.size(), static_cast<size_t>(kDataLayoutVersion));
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

// Layout 1 -> 2: a request written by layout 1 (its hash and party index, no worklist row)
// gets its worklist rows, and so appears in its parties' worklists; a tombstone gets none.
TEST_F(DataLayoutTest, MigrationWritesTheWorklistRowsOfRequestsOfLayoutOne) {
  const std::string p = Sharding::Prefix(5);
  const std::string id = Sharding::MakeId("rq", 5, now_);
  intake::v1::Request r;
  r.set_id(id);
  *r.mutable_content() = rogatory::testing::CompleteEio();
  r.set_status(v1::REQUEST_STATUS_RECEIVED);
  r.set_etag("1");
  const std::string created = "1767225600000";
  // As layout 1's create_request.lua left it.
  ASSERT_TRUE(RunRedisCommand(redis(), {"HSET",
                                        p + "req:" + id,
                                        "pb",
                                        r.SerializeAsString(),
                                        "status",
                                        "1",
                                        "instrument",
                                        "1",
                                        "issuing_state",
                                        "FR",
                                        "requested_state",
                                        "DE",
                                        "created_ms",
                                        created,
                                        "updated_ms",
                                        created,
                                        "etag",
                                        "1",
                                        "urgency",
                                        "0",
                                        "issuing_authority",
                                        "FR-TJ-PARIS-JI",
                                        "executing_authority",
                                        ""})
                  .ok());
  ASSERT_TRUE(
      RunRedisCommand(redis(), {"ZADD", p + "idx:party:a:FR-TJ-PARIS-JI", created, id}).ok());
  const std::string erased = Sharding::MakeId("rq", 5, now_ + absl::Seconds(1));
  ASSERT_TRUE(RunRedisCommand(redis(), {"HSET", p + "req:" + erased, "pb", "x", "status", "1",
                                        "issuing_authority", "FR-TJ-PARIS-JI", "erased_ms", "1"})
                  .ok());
  ASSERT_TRUE(WriteDataLayout(redis(), {1, 16}, "test", now_).ok());

  auto applied = migrate::Apply(redis(), 16, /*dry_run=*/false, now_);
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_EQ(applied->steps.size(), static_cast<size_t>(kDataLayoutVersion - 1));
  EXPECT_EQ(applied->after, (DataLayout{kDataLayoutVersion, 16}));
  auto row = RunRedisCommand(redis(), {"HGET", p + "wl:a:FR-TJ-PARIS-JI", id});
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(*ReplyString(*row, "HGET"), absl::StrCat("1\x1f"
                                                     "1\x1f"
                                                     "0\x1f"
                                                     "FR\x1f"
                                                     "DE\x1f"
                                                     "FR-TJ-PARIS-JI\x1f\x1f",
                                                     created, "\x1f"));
  auto tomb = RunRedisCommand(redis(), {"HEXISTS", p + "wl:a:FR-TJ-PARIS-JI", erased});
  ASSERT_TRUE(tomb.ok());
  EXPECT_EQ(*ReplyInteger(*tomb, "HEXISTS"), 0);

  intake::RedisRequestStore store(redis(), Sharding(16), absl::Hours(1));
  intake::ListQuery q;
  q.scope = ListScope{false, "FR-TJ-PARIS-JI", ""};
  auto page = rogatory::testing::Await<intake::ListPage>(
      [&](auto done) { store.List(q, std::move(done)); });
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->requests.size(), 1u);
  EXPECT_EQ(page->requests[0].id(), id);
  q.scope = ListScope{false, "", "DE"};  // the requested state's central authority
  page = rogatory::testing::Await<intake::ListPage>(
      [&](auto done) { store.List(q, std::move(done)); });
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->requests.size(), 1u);
}

// Layout 2 -> 3 (issue 19): requests written by layout 2 (hashes, no counts) get their
// shard's request counts "<instrument>:<status>" -> requests, tombstones included (they stay
// in the indexes until erased); a count already there (a step cut short) is rewritten whole.
TEST_F(DataLayoutTest, MigrationWritesTheRequestCountsOfRequestsOfLayoutTwo) {
  auto hash = [&](int shard, int n, const std::string& instrument, const std::string& status,
                  bool tombstone) {
    const std::string id = Sharding::MakeId("rq", shard, now_ + absl::Seconds(n));
    std::vector<std::string> args = {"HSET",       Sharding::Prefix(shard) + "req:" + id,
                                     "pb",         "x",
                                     "instrument", instrument,
                                     "status",     status,
                                     "etag",       "1"};
    if (tombstone) {
      args.push_back("erased_ms");
      args.push_back("1");
    }
    ASSERT_TRUE(RunRedisCommand(redis(), args).ok());
  };
  hash(5, 1, "1", "1", false);
  hash(5, 2, "1", "1", false);
  hash(5, 3, "1", "7", true);
  hash(5, 4, "3", "2", false);
  hash(9, 5, "1", "1", false);
  // Not requests: another key under req:, a document list.
  ASSERT_TRUE(RunRedisCommand(redis(), {"HSET", Sharding::Prefix(5) + "req:x:meta", "instrument",
                                        "1", "status", "1"})
                  .ok());
  ASSERT_TRUE(
      RunRedisCommand(redis(), {"HSET", Sharding::Prefix(9) + "counts", "1:1", "40", "2:2", "1"})
          .ok());
  ASSERT_TRUE(WriteDataLayout(redis(), {2, 16}, "test", now_).ok());

  auto applied = migrate::Apply(redis(), 16, /*dry_run=*/false, now_);
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_EQ(applied->steps.size(), static_cast<size_t>(kDataLayoutVersion - 2));  // 2 -> 3 ...
  EXPECT_EQ(applied->after, (DataLayout{kDataLayoutVersion, 16}));
  auto counts = [&](int shard) {
    auto reply = RunRedisCommand(redis(), {"HGETALL", Sharding::Prefix(shard) + "counts"});
    EXPECT_TRUE(reply.ok());
    std::map<std::string, std::string> out;
    auto fields = ReplyStrings(*reply, "HGETALL");
    for (size_t i = 0; fields.ok() && i + 1 < fields->size(); i += 2) {
      out[(*fields)[i]] = (*fields)[i + 1];
    }
    return out;
  };
  EXPECT_EQ(counts(5),
            (std::map<std::string, std::string>{{"1:1", "2"}, {"1:7", "1"}, {"3:2", "1"}}));
  EXPECT_EQ(counts(9), (std::map<std::string, std::string>{{"1:1", "1"}}));
  EXPECT_TRUE(counts(0).empty());
}

// The per-shard document usage (issue 18): data of the previous layout, with one
// rg:docbytes:authority hash over every shard, gets each shard's hash of the bytes its
// requests charged to each authority (their docbytes:<request id> a:<authority> fields), and
// the old hash goes. The migration is the latest one, from the version before this build's.
TEST_F(DataLayoutTest, MigrationSplitsTheAuthorityDocumentUsageIntoTheShards) {
  auto hset = [&](const std::string& key, std::vector<std::string> pairs) {
    std::vector<std::string> cmd = {"HSET", key};
    cmd.insert(cmd.end(), pairs.begin(), pairs.end());
    ASSERT_TRUE(RunRedisCommand(redis(), cmd).ok());
  };
  // As the previous layout's mutate_request.lua left them: two requests in shard 3, one in
  // shard 5; FR uploaded to all three, DE to one.
  hset("rg:{s3}:docbytes:rq-a", {"total", "300", "a:FR", "100", "a:DE", "200"});
  hset("rg:{s3}:docbytes:rq-b", {"total", "40", "a:FR", "40"});
  hset("rg:{s5}:docbytes:rq-c", {"total", "7", "a:FR", "7"});
  hset("rg:docbytes:authority", {"FR", "147", "DE", "200"});
  ASSERT_TRUE(WriteDataLayout(redis(), {kDataLayoutVersion - 1, 16}, "test", now_).ok());

  auto usage = [&](int shard) {
    auto reply = RunRedisCommand(
        redis(), {"HGETALL", absl::StrCat(Sharding::Prefix(shard), "docbytes:authority")});
    EXPECT_TRUE(reply.ok());
    return *ReplyFields(*reply, "HGETALL");
  };
  for (int run = 0; run < 2; ++run) {  // and again, as a step cut short would be: idempotent
    if (run == 1) {
      ASSERT_TRUE(WriteDataLayout(redis(), {kDataLayoutVersion - 1, 16}, "test", now_).ok());
    }
    auto applied = migrate::Apply(redis(), 16, /*dry_run=*/false, now_);
    ASSERT_TRUE(applied.ok()) << applied.status();
    ASSERT_EQ(applied->steps.size(), 1u);
    EXPECT_EQ(applied->after, (DataLayout{kDataLayoutVersion, 16}));
    using Fields = std::map<std::string, std::string>;
    EXPECT_EQ(usage(3), (Fields{{"FR", "140"}, {"DE", "200"}}));
    EXPECT_EQ(usage(5), (Fields{{"FR", "7"}}));
    EXPECT_TRUE(usage(0).empty());
    auto old = RunRedisCommand(redis(), {"EXISTS", "rg:docbytes:authority"});
    ASSERT_TRUE(old.ok());
    EXPECT_EQ(*ReplyInteger(*old, "EXISTS"), 0);
    // The per-request hashes stay as they were: retention gives their bytes back.
    auto kept = RunRedisCommand(redis(), {"HGET", "rg:{s3}:docbytes:rq-a", "a:DE"});
    ASSERT_TRUE(kept.ok());
    EXPECT_EQ(*ReplyString(*kept, "HGET"), "200");
  }
}

}  // namespace
}  // namespace rogatory::common
