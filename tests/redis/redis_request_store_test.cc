// The RequestStore contract on a real redis-server.
#include "redis_request_store.h"

#include <chrono>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "redis_cluster.h"
#include "redis_server.h"
#include "request_store_contract.h"
#include "rogatory/common/async_redis_client.h"

namespace rogatory::testing {
namespace {

RedisServer& Server() { return SharedRedisServer(); }
common::RedisClient& Client() { return SharedRedisClient(); }

struct RedisFactory {
  static std::unique_ptr<intake::RequestStore> Make() {
    EXPECT_TRUE(common::RunRedisCommand(Client(), {"FLUSHALL"}).ok());
    return std::make_unique<intake::RedisRequestStore>(Client(), common::Sharding(Shards()),
                                                       absl::Hours(48));
  }
  static int Shards() { return 16; }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, RequestStoreContractTest, RedisFactory);
INSTANTIATE_TYPED_TEST_SUITE_P(OneNodeCluster, RequestStoreContractTest,
                               OnOneNodeCluster<RedisFactory>);
// On a real cluster of three primaries (label cluster: see rogatory_cluster_variant).
INSTANTIATE_TYPED_TEST_SUITE_P(Cluster, RequestStoreContractTest, OnCluster<RedisFactory>);

TEST(RedisRequestStoreTest, KeysLiveInTheRequestsShardAndIdempotencyRecordsExpire) {
  auto store = RedisFactory::Make();
  intake::NewRequest n;
  n.request.set_id(common::Sharding::MakeId("rq", 5, absl::FromUnixSeconds(1767225600)));
  *n.request.mutable_content() = CompleteEio();
  n.request.set_status(common::v1::REQUEST_STATUS_RECEIVED);
  n.idempotency = intake::Idempotency{"FR-TJ-PARIS-JI", "k1", "fp"};
  auto created = Await<intake::CreateOutcome>(
      [&](auto done) { store->Create(std::move(n), std::move(done)); });
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string keys = Server().Cli("--scan");
  for (const std::string& line :
       {std::string("rg:{s5}:req:"), std::string("rg:{s5}:hist:"),
        std::string("rg:{s5}:idem:FR-TJ-PARIS-JI:k1"), std::string("rg:{s5}:idx:all")}) {
    EXPECT_NE(keys.find(line), std::string::npos) << line << " in\n" << keys;
  }
  EXPECT_EQ(keys.find("{s4}"), std::string::npos);
  const int ttl = std::stoi(Server().Cli("TTL rg:{s5}:idem:FR-TJ-PARIS-JI:k1"));
  EXPECT_GT(ttl, 47 * 3600);
  EXPECT_LE(ttl, 48 * 3600);
}

// redis-cli's answer without its line end ("" for nil).
std::string Trimmed(const std::string& args) {
  return std::string(absl::StripAsciiWhitespace(Server().Cli(args)));
}

intake::NewRequest NewInShard(int shard, int64_t create_ms) {
  intake::NewRequest n;
  n.request.set_id(common::Sharding::MakeId("rq", shard, absl::FromUnixMillis(create_ms)));
  *n.request.mutable_content() = CompleteEio();
  n.request.set_status(common::v1::REQUEST_STATUS_RECEIVED);
  *n.request.mutable_create_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(create_ms);
  n.request.set_etag("1");
  n.submitted.set_request_id(n.request.id());
  return n;
}

// The mutate script is given the index keys a change moves, computed from the fields the
// change was computed on; a caller that passes none (or stale ones) costs a retry with the
// stored values, never a wrong index.
TEST(RedisRequestStoreTest, ChangeWithoutItsSnapshotsFieldsStillMovesItsIndexEntries) {
  auto store = RedisFactory::Make();
  intake::NewRequest n = NewInShard(3, 1767225600000);
  const std::string id = n.request.id();
  n.request.mutable_content()->set_requested_state("DE");
  ASSERT_TRUE(Await<intake::CreateOutcome>([&](auto done) {
                store->Create(std::move(n), std::move(done));
              }).ok());
  intake::Mutation m;
  m.id = id;
  m.expected_version = 1;
  m.new_version = 2;
  m.updated_ms = 1767225700000;
  m.fields.emplace_back("status", "2");
  m.fields.emplace_back("requested_state", "FR");
  m.fields_before = {{"status", "9"}, {"requested_state", "IT"}};  // wrong on purpose
  auto applied =
      Await<intake::MutationOutcome>([&](auto done) { store->Mutate(m, std::move(done)); });
  ASSERT_TRUE(applied.ok()) << applied.status();
  const int received = static_cast<int>(common::v1::REQUEST_STATUS_RECEIVED);
  EXPECT_EQ(Trimmed(absl::StrCat("ZSCORE rg:{s3}:idx:status:", received, " ", id)), "");
  EXPECT_EQ(Trimmed(absl::StrCat("ZSCORE rg:{s3}:idx:status:2 ", id)), "1767225600000");
  EXPECT_EQ(Trimmed(absl::StrCat("ZSCORE rg:{s3}:idx:requested_state:DE ", id)), "");
  EXPECT_EQ(Trimmed(absl::StrCat("ZSCORE rg:{s3}:idx:party:s:DE ", id)), "");
  EXPECT_EQ(Trimmed(absl::StrCat("ZSCORE rg:{s3}:idx:party:s:FR ", id)), "1767225600000");
  EXPECT_EQ(Trimmed("EXISTS rg:{s3}:idx:status:9"), "0");
}

// The create script cannot read the request an idempotency record names (its id is data):
// a replay reads it in a second step, and a key whose request is gone creates a new one.
TEST(RedisRequestStoreTest, KeyWhoseRequestIsGoneCreatesANewRequest) {
  auto store = RedisFactory::Make();
  auto create = [&](intake::NewRequest n) {
    n.idempotency = intake::Idempotency{"FR-TJ-PARIS-JI", "k1", "fp"};
    return Await<intake::CreateOutcome>(
        [&](auto done) { store->Create(std::move(n), std::move(done)); });
  };
  intake::NewRequest first = NewInShard(5, 1767225600000);
  const std::string first_id = first.request.id();
  ASSERT_TRUE(create(first).ok());
  auto replay = create(NewInShard(5, 1767225601000));
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(replay->request.id(), first_id);
  Server().Cli(absl::StrCat("DEL rg:{s5}:req:", first_id));
  intake::NewRequest second = NewInShard(5, 1767225602000);
  const std::string second_id = second.request.id();
  auto again = create(second);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->replayed);
  EXPECT_EQ(again->request.id(), second_id);
  EXPECT_EQ(Trimmed("HGET rg:{s5}:idem:FR-TJ-PARIS-JI:k1 id"), second_id);
}

TEST(RedisRequestStoreTest, StoppedRedisIsUnavailableNotACrash) {
  RedisServer own;
  auto client = ConnectedClient(own, common::AsyncRedisOptions{});
  intake::RedisRequestStore store(*client, common::Sharding(16), absl::Hours(1));
  own.Stop();
  absl::Status last;
  for (int i = 0; i < 50 && last.ok(); ++i) {
    last =
        Await<intake::v1::Request>([&](auto done) {
          store.Get(common::Sharding::MakeId("rq", 1, absl::FromUnixSeconds(1)), std::move(done));
        }).status();
    if (last.code() == absl::StatusCode::kNotFound) last = absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace rogatory::testing
