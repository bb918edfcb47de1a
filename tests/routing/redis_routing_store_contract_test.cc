// The RoutingStore contract on a real redis-server.
#include <chrono>
#include <thread>

#include "redis_routing_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "routing_store_contract.h"

namespace rogatory::testing {
namespace {

// One redis-server and client for the contract tests of this binary, stopped at exit.
class ContractRedis : public ::testing::Environment {
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
  static ContractRedis* instance;
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<common::RedisClient> client_;
};
ContractRedis* ContractRedis::instance =
    static_cast<ContractRedis*>(::testing::AddGlobalTestEnvironment(new ContractRedis));

common::RedisClient& Client() { return *ContractRedis::instance->client_; }

struct RedisFactory {
  static std::unique_ptr<routing::RoutingStore> Make() {
    EXPECT_TRUE(common::RunRedisCommand(Client(), {"FLUSHALL"}).ok());
    return std::make_unique<routing::RedisRoutingStore>(Client(), common::Sharding(Shards()));
  }
  static int Shards() { return 16; }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, RoutingStoreContractTest, RedisFactory);

}  // namespace
}  // namespace rogatory::testing
