// The RequestStore contract on a real redis-server.
#include "redis_request_store.h"

#include <chrono>
#include <thread>

#include "redis_server.h"
#include "request_store_contract.h"
#include "rogatory/common/async_redis_client.h"

namespace rogatory::testing {
namespace {

// One redis-server and client for the store tests of this binary, stopped at exit.
class SharedRedis : public ::testing::Environment {
 public:
  void SetUp() override {
    server_ = std::make_unique<RedisServer>();
    common::AsyncRedisOptions o;
    o.url = *common::ParseRedisUrl(server_->url());
    o.command_timeout = absl::Seconds(5);
    client_ = common::NewAsyncRedisClient(o);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!common::RunRedisCommand(*client_, {"PING"}).ok() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
  }
  static SharedRedis* instance;
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<common::RedisClient> client_;
};
SharedRedis* SharedRedis::instance =
    static_cast<SharedRedis*>(::testing::AddGlobalTestEnvironment(new SharedRedis));

RedisServer& Server() { return *SharedRedis::instance->server_; }
common::RedisClient& Client() { return *SharedRedis::instance->client_; }

struct RedisFactory {
  static std::unique_ptr<intake::RequestStore> Make() {
    EXPECT_TRUE(common::RunRedisCommand(Client(), {"FLUSHALL"}).ok());
    return std::make_unique<intake::RedisRequestStore>(Client(), common::Sharding(Shards()),
                                                       absl::Hours(48));
  }
  static int Shards() { return 16; }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, RequestStoreContractTest, RedisFactory);

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

TEST(RedisRequestStoreTest, StoppedRedisIsUnavailableNotACrash) {
  RedisServer own;
  common::AsyncRedisOptions o;
  o.url = *common::ParseRedisUrl(own.url());
  auto client = common::NewAsyncRedisClient(o);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!common::RunRedisCommand(*client, {"PING"}).ok() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
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
