// The shared Lua helpers of common/src/lua/lib, run by a real redis-server and read back with
// the real protobuf decoder: what a script appends must be what C++ reads.
#include <chrono>
#include <cstdint>
#include <thread>

#include "gtest/gtest.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/v1/events.pb.h"
#include "test_lua_scripts.h"

namespace rogatory::common {
namespace {

TEST(LuaLibraryTest, AppendSequenceAddsField3ThatTheDecoderReads) {
  testing::RedisServer server;
  AsyncRedisOptions o;
  o.url = *ParseRedisUrl(server.url());
  o.command_timeout = absl::Seconds(5);
  auto redis = NewAsyncRedisClient(o);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!RunRedisCommand(*redis, {"PING"}).ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const LuaScript probe{std::string(test_lua::kAppendSequenceProbe)};

  rogatory::common::v1::Event event;
  event.set_event_id("01J0000000000000000000000");
  event.set_request_id("req-1");
  event.set_type(rogatory::common::v1::EVENT_TYPE_REQUEST_SUBMITTED);
  event.set_source("intake");
  event.set_trace_id("0123456789abcdef0123456789abcdef");
  const std::string bytes = event.SerializeAsString();

  // One-byte, boundary, two-byte, three-byte and five-plus-byte varints.
  for (int64_t sequence :
       {int64_t{1}, int64_t{127}, int64_t{128}, int64_t{300}, int64_t{16384}, int64_t{1} << 40}) {
    SCOPED_TRACE(sequence);
    auto reply = RunRedisScript(*redis, probe, {}, {bytes, std::to_string(sequence)});
    ASSERT_TRUE(reply.ok()) << reply.status();
    auto appended = ReplyString(*reply, "append_sequence_probe");
    ASSERT_TRUE(appended.ok()) << appended.status();
    rogatory::common::v1::Event decoded;
    ASSERT_TRUE(decoded.ParseFromString(*appended));
    EXPECT_EQ(decoded.sequence(), sequence);
    decoded.clear_sequence();
    EXPECT_EQ(decoded.SerializeAsString(), bytes);
  }
}

}  // namespace
}  // namespace rogatory::common
