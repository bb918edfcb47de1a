// The platform's Redis client authenticates as a Redis ACL user named in redis-url
// (redis://user:password@host:port/db), against a real redis-server.
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;
using Steady = std::chrono::steady_clock;

class RedisAclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // An application user limited to Rogatory's keys; the default user gets a password so
    // that an unauthenticated connection can do nothing.
    ASSERT_THAT(server_.Cli("ACL SETUSER rogatory on '>s3cret-app' '~rg:*' '+@all' "
                            "'-@dangerous' '+info'"),
                HasSubstr("OK"));
    ASSERT_THAT(server_.Cli("ACL SETUSER default on '>admin-pass'"), HasSubstr("OK"));
  }
  void TearDown() override {
    server_.Cli("--user default --pass admin-pass --no-auth-warning ACL SETUSER default nopass");
  }

  std::unique_ptr<RedisClient> Connect(const std::string& userinfo) {
    AsyncRedisOptions o;
    auto url = ParseRedisUrl("redis://" + userinfo +
                             "@127.0.0.1:" + std::to_string(server_.port()) + "/0");
    EXPECT_TRUE(url.ok()) << url.status();
    o.url = *url;
    o.command_timeout = absl::Milliseconds(500);
    o.max_backoff = absl::Milliseconds(100);
    return NewAsyncRedisClient(o);
  }
  // The first reply that is not UNAVAILABLE (the client connects in the background).
  static absl::StatusOr<RedisReply> Settled(RedisClient& client, std::vector<std::string> args) {
    const auto deadline = Steady::now() + std::chrono::seconds(10);
    absl::StatusOr<RedisReply> r = RunRedisCommand(client, args);
    while (r.status().code() == absl::StatusCode::kUnavailable && Steady::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      r = RunRedisCommand(client, args);
    }
    return r;
  }

  testing::RedisServer server_;
};

TEST_F(RedisAclTest, AclUserFromTheUrlCanUseRogatoryKeysOnly) {
  auto client = Connect("rogatory:s3cret-app");
  auto set = Settled(*client, {"SET", "rg:{s0}:acl-test", "v"});
  ASSERT_TRUE(set.ok()) << set.status();
  auto got = RunRedisCommand(*client, {"GET", "rg:{s0}:acl-test"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->str, "v");
  auto script = RunRedisCommand(
      *client, {"EVAL", "return redis.call('INCR', KEYS[1])", "1", "rg:{s0}:acl-n"});
  ASSERT_TRUE(script.ok()) << script.status();
  // Outside its key pattern, and dangerous commands, are refused by Redis.
  auto other = RunRedisCommand(*client, {"SET", "other:key", "v"});
  EXPECT_FALSE(other.ok());
  EXPECT_THAT(std::string(other.status().message()), HasSubstr("NOPERM"));
  EXPECT_FALSE(RunRedisCommand(*client, {"FLUSHALL"}).ok());
}

TEST_F(RedisAclTest, WrongPasswordNeverConnects) {
  auto client = Connect("rogatory:wrong");
  const auto deadline = Steady::now() + std::chrono::milliseconds(700);
  while (Steady::now() < deadline) {
    auto r = RunRedisCommand(*client, {"SET", "rg:{s0}:x", "v"});
    ASSERT_FALSE(r.ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(server_.Cli("--user rogatory --pass s3cret-app --no-auth-warning EXISTS rg:{s0}:x"),
            "0\n");
}

TEST_F(RedisAclTest, PasswordOnlyUrlAuthenticatesTheDefaultUser) {
  auto client = Connect(":admin-pass");
  auto r = Settled(*client, {"SET", "anything", "v"});
  EXPECT_TRUE(r.ok()) << r.status();
}

}  // namespace
}  // namespace rogatory::common
