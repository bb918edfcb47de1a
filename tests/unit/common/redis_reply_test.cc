#include "rogatory/common/redis_reply.h"

#include <gtest/gtest.h>

namespace rogatory::common {
namespace {

RedisReply Str(std::string s) {
  RedisReply r;
  r.type = RedisReply::Type::kString;
  r.str = std::move(s);
  return r;
}

RedisReply Int(int64_t v) {
  RedisReply r;
  r.type = RedisReply::Type::kInteger;
  r.integer = v;
  return r;
}

RedisReply Array(std::vector<RedisReply> elements) {
  RedisReply r;
  r.type = RedisReply::Type::kArray;
  r.elements = std::move(elements);
  return r;
}

TEST(RedisReplyTest, ReadsEachShape) {
  EXPECT_EQ(*ReplyInteger(Int(7), "probe"), 7);
  EXPECT_EQ(*ReplyString(Str("x"), "probe"), "x");
  EXPECT_FALSE(ReplyOptionalString(RedisReply{}, "probe")->has_value());
  EXPECT_EQ(**ReplyOptionalString(Str("y"), "probe"), "y");
  EXPECT_EQ(*ReplyStrings(Array({Str("a"), RedisReply{}, Str("c")}), "probe"),
            (std::vector<std::string>{"a", "", "c"}));
  auto fields = ReplyFields(Array({Str("k1"), Str("v1"), Str("k2"), Str("v2")}), "probe");
  ASSERT_TRUE(fields.ok());
  EXPECT_EQ(fields->at("k1"), "v1");
  EXPECT_EQ(fields->at("k2"), "v2");
  EXPECT_EQ(*ParseDecimal("-42", "probe"), -42);
}

TEST(RedisReplyTest, AnotherShapeIsInternalNamingTheScriptNotTheValue) {
  auto wrong = ReplyInteger(Str("secret-name"), "claim_job");
  ASSERT_EQ(wrong.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(wrong.status().message().find("claim_job"), std::string::npos);
  EXPECT_EQ(wrong.status().message().find("secret-name"), std::string::npos);
  EXPECT_EQ(ReplyString(Int(1), "s").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ReplyStrings(Str("x"), "s").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ReplyStrings(Array({Int(1)}), "s").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ReplyFields(Array({Str("odd")}), "s").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ParseDecimal("12x", "s").status().code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace rogatory::common
