// The shared Lua helpers of common/src/lua/lib, run by a real redis-server and read back with
// the real protobuf decoder: what a script appends must be what C++ reads.
#include <cstdint>
#include <string>
#include <vector>

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
  auto redis = rogatory::testing::ConnectedClient(server);
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

// What intake's staging and commit scripts refuse: bytes past the request's bound first,
// then past the authority's; a bound of 0 is none; reaching a bound exactly is allowed.
TEST(LuaLibraryTest, DocumentQuotaNamesTheFirstBoundPassedAndItsUse) {
  testing::RedisServer server;
  auto redis = rogatory::testing::ConnectedClient(server);
  const LuaScript probe{std::string(test_lua::kDocumentQuotaProbe)};
  struct Case {
    std::vector<std::string> args;  // request used, authority used, adding, bounds
    std::vector<std::string> reply;
  };
  for (const Case& c : std::vector<Case>{
           {{"90", "10", "10", "100", "1000"}, {"ok"}},
           {{"91", "10", "10", "100", "1000"}, {"quota", "request", "91"}},
           {{"91", "995", "10", "100", "1000"}, {"quota", "request", "91"}},
           {{"10", "995", "10", "100", "1000"}, {"quota", "authority", "995"}},
           {{"5000", "5000", "10", "0", "0"}, {"ok"}},
           {{"3145728", "0", "1", "3145728", "0"}, {"quota", "request", "3145728"}}}) {
    SCOPED_TRACE(c.args[0] + " " + c.args[1] + " " + c.args[2]);
    auto reply = RunRedisScript(*redis, probe, {}, c.args);
    ASSERT_TRUE(reply.ok()) << reply.status();
    auto strings = ReplyStrings(*reply, "document_quota_probe");
    ASSERT_TRUE(strings.ok()) << strings.status();
    EXPECT_EQ(*strings, c.reply);
  }
}

}  // namespace
}  // namespace rogatory::common
