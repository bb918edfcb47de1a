// The asynchronous Redis client against a real redis-server.
#include "rogatory/common/async_redis_client.h"

#include <chrono>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "redis_server.h"
#include "rogatory/common/test_clock.h"

namespace rogatory::common {
namespace {

using Steady = std::chrono::steady_clock;

class AsyncRedisClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<RedisClient> Connect(absl::Duration timeout = absl::Milliseconds(300)) {
    AsyncRedisOptions o;
    o.url = *ParseRedisUrl(server_.url());
    o.command_timeout = timeout;
    o.max_backoff = absl::Milliseconds(200);
    auto client = NewAsyncRedisClient(o);
    EXPECT_TRUE(testing::AwaitPong(*client));
    return client;
  }

  testing::RedisServer server_;
};

TEST_F(AsyncRedisClientTest, CommandsRoundTripBinarySafeValues) {
  auto client = Connect();
  const std::string value("a\0b\r\nc", 6);
  ASSERT_TRUE(RunRedisCommand(*client, {"SET", "k", value}).ok());
  auto got = RunRedisCommand(*client, {"GET", "k"});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->str, value);
  auto missing = RunRedisCommand(*client, {"GET", "nothing"});
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->is_nil());
}

TEST_F(AsyncRedisClientTest, ErrorRepliesBecomeStatuses) {
  auto client = Connect();
  ASSERT_TRUE(RunRedisCommand(*client, {"SET", "s", "x"}).ok());
  auto r = RunRedisCommand(*client, {"INCR", "s"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
}

TEST_F(AsyncRedisClientTest, ScriptsRunAfterTheScriptCacheIsFlushed) {
  auto client = Connect();
  LuaScript script("return tonumber(ARGV[1]) + 1");
  auto run = [&] {
    absl::Notification done;
    absl::StatusOr<RedisReply> result;
    client->Eval(script, {}, {"41"}, [&](absl::StatusOr<RedisReply> r) {
      result = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  };
  auto first = run();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->integer, 42);
  ASSERT_TRUE(RunRedisCommand(*client, {"SCRIPT", "FLUSH"}).ok());
  auto second = run();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->integer, 42);
}

TEST_F(AsyncRedisClientTest, PausedRedisTimesOutWithUnavailableInsteadOfHanging) {
  auto client = Connect(absl::Milliseconds(200));
  ASSERT_TRUE(RunRedisCommand(*client, {"SET", "k", "v"}).ok());
  server_.Cli("CLIENT PAUSE 2000 ALL");
  const auto start = Steady::now();
  auto r = RunRedisCommand(*client, {"GET", "k"});
  const auto waited = Steady::now() - start;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(waited, std::chrono::milliseconds(1500));
}

TEST_F(AsyncRedisClientTest, StoppedRedisFailsFastAndRecoversAfterRestart) {
  auto client = Connect();
  ASSERT_TRUE(RunRedisCommand(*client, {"SET", "durable", "yes"}).ok());
  server_.Stop();
  // The disconnect is noticed at once; from then on commands fail without waiting.
  const auto deadline = Steady::now() + std::chrono::seconds(5);
  absl::Status last;
  while (Steady::now() < deadline) {
    const auto start = Steady::now();
    last = RunRedisCommand(*client, {"PING"}).status();
    if (!last.ok()) {
      EXPECT_LT(Steady::now() - start, std::chrono::milliseconds(400));
      break;
    }
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kUnavailable);
  server_.Start();
  ASSERT_TRUE(testing::AwaitPong(*client));
  auto got = RunRedisCommand(*client, {"GET", "durable"});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->str, "yes");  // AOF kept it
}

TEST_F(AsyncRedisClientTest, ManyConcurrentCommandsAllComplete) {
  auto client = Connect(absl::Seconds(5));
  constexpr int kCount = 5000;
  std::atomic<int> ok{0};
  absl::Notification all_done;
  std::atomic<int> remaining{kCount};
  for (int i = 0; i < kCount; ++i) {
    client->Command({"INCR", "counter"}, [&](absl::StatusOr<RedisReply> r) {
      if (r.ok()) ok.fetch_add(1);
      if (remaining.fetch_sub(1) == 1) all_done.Notify();
    });
  }
  all_done.WaitForNotification();
  EXPECT_EQ(ok.load(), kCount);
  EXPECT_EQ(RunRedisCommand(*client, {"GET", "counter"})->str, std::to_string(kCount));
}

TEST_F(AsyncRedisClientTest, ClientDestroyedRightAfterCreationStopsCleanly) {
  // A service that fails at start-up destroys its client at once, possibly before the
  // client's loop thread has started: that must not hang.
  AsyncRedisOptions o;
  o.url = *ParseRedisUrl(server_.url());
  auto finished = std::make_shared<absl::Notification>();
  std::thread([o, finished] {
    for (int i = 0; i < 300; ++i) {
      auto client = NewAsyncRedisClient(o);
      if (i % 3 == 0) client->Command({"PING"}, [](absl::StatusOr<RedisReply>) {});
    }
    finished->Notify();
  }).detach();  // if it hangs, the failure below reports it and the process exit ends it
  EXPECT_TRUE(finished->WaitForNotificationWithTimeout(absl::Seconds(60)))
      << "a client destroyed right after creation did not stop";
}

TEST_F(AsyncRedisClientTest, SharedTestClockMovesEveryProcessForwardOnly) {
  auto a = Connect();
  auto b = Connect();
  SimulatedClock base;
  SharedTestClock clock_a(*a, base), clock_b(*b, base);
  auto wait = [](auto fn) {
    absl::Notification n;
    absl::StatusOr<absl::Duration> r;
    fn([&](absl::StatusOr<absl::Duration> x) {
      r = x;
      n.Notify();
    });
    n.WaitForNotification();
    return r;
  };
  auto advanced = wait([&](auto cb) { clock_a.Advance(absl::Hours(24 * 90), cb); });
  ASSERT_TRUE(advanced.ok()) << advanced.status();
  EXPECT_EQ(*advanced, absl::Hours(24 * 90));
  ASSERT_TRUE(wait([&](auto cb) { clock_b.Refresh(cb); }).ok());
  EXPECT_EQ(clock_b.Now(), base.Now() + absl::Hours(24 * 90));
  auto backwards = wait([&](auto cb) { clock_b.SetNow(base.Now() + absl::Hours(1), cb); });
  EXPECT_EQ(backwards.status().code(), absl::StatusCode::kInvalidArgument);
  auto forwards = wait([&](auto cb) { clock_b.SetNow(base.Now() + absl::Hours(24 * 100), cb); });
  ASSERT_TRUE(forwards.ok());
  ASSERT_TRUE(wait([&](auto cb) { clock_a.Refresh(cb); }).ok());
  EXPECT_EQ(clock_a.Now(), base.Now() + absl::Hours(24 * 100));
}

}  // namespace
}  // namespace rogatory::common
