// Status mapping, ids, codes, Redis URLs and log formatting.
#include <set>

#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "rogatory/common/codes.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/redis.h"
#include "rogatory/common/status.h"

namespace rogatory::common {
namespace {

TEST(StatusTest, FieldViolationsBecomeBadRequestDetailsInGrpcStatus) {
  FieldViolations v;
  v.Add("content.instrument", "is required");
  v.Add("content.subjects[0].family_name", "is required");
  grpc::Status g = ToGrpcStatus(v.ToStatus());
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(g.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  // The BadRequest, then the ErrorInfo every error carries (errors.proto).
  ASSERT_EQ(details.details_size(), 2);
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad));
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(1).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "INVALID_FIELD");
  ASSERT_EQ(bad.field_violations_size(), 2);
  EXPECT_EQ(bad.field_violations(1).field(), "content.subjects[0].family_name");
}

TEST(StatusTest, EmptyViolationsAreOk) { EXPECT_TRUE(FieldViolations().ToStatus().ok()); }

TEST(StatusTest, PlainErrorsKeepCodeAndMessageAndGetTheDefaultReason) {
  grpc::Status g = ToGrpcStatus(absl::UnavailableError("redis down"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(g.error_message(), "redis down");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(g.error_details()));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.domain(), "rogatory");
  EXPECT_EQ(info.reason(), "STORE_UNAVAILABLE");
}

TEST(IdsTest, UlidsAreTimeOrderedAndUnique) {
  std::set<std::string> seen;
  std::string previous;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewUlid(absl::FromUnixMillis(1767225600000 + i));
    ASSERT_EQ(id.size(), 26u);
    EXPECT_TRUE(seen.insert(id).second);
    EXPECT_LT(previous, id);
    previous = id;
  }
}

TEST(IdsTest, IdsNameTheirShard) {
  Sharding s(16);
  for (int shard : {0, 7, 15}) {
    auto id = Sharding::MakeId("rq", shard, absl::FromUnixSeconds(1767225600));
    auto parsed = s.ShardOf("rq", id);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, shard);
  }
  EXPECT_FALSE(s.ShardOf("rq", "rq-16-01jabcdefghjkmnpqrstvwxyz0").ok());
  EXPECT_FALSE(s.ShardOf("rq", "rq-3-short").ok());
  EXPECT_FALSE(s.ShardOf("rq", "dl-3-01jabcdefghjkmnpqrstvwxyz0").ok());
  EXPECT_EQ(Sharding::Prefix(7), "rg:{s7}:");
}

TEST(IdsTest, ShardForSpreadsKeysOverAllShards) {
  Sharding s(16);
  std::set<int> used;
  for (int i = 0; i < 500; ++i) used.insert(s.ShardFor("key-" + std::to_string(i)));
  EXPECT_EQ(used.size(), 16u);
  EXPECT_EQ(s.ShardFor("stable"), s.ShardFor("stable"));
}

TEST(CodesTest, CountryCodes) {
  EXPECT_TRUE(IsCountryCode("DE"));
  EXPECT_TRUE(IsCountryCode("GR"));
  EXPECT_FALSE(IsCountryCode("EL"));
  EXPECT_FALSE(IsCountryCode("de"));
  EXPECT_FALSE(IsCountryCode("XX"));
  EXPECT_FALSE(IsCountryCode("germany"));
}

TEST(CodesTest, LanguageTags) {
  for (const char* ok : {"fr", "de", "pt-PT", "sr-Latn", "sr-Latn-RS", "es-419", "de-DE-1996"}) {
    EXPECT_TRUE(IsLanguageTag(ok)) << ok;
  }
  for (const char* bad : {"", "f", "french", "fr_FR", "fr-", "-fr", "fr-FRA-x"}) {
    EXPECT_FALSE(IsLanguageTag(bad)) << bad;
  }
}

TEST(RedisUrlTest, ParsesUserPasswordHostPortDb) {
  auto u = ParseRedisUrl("redis://app:s3cret@redis.svc:6380/2");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->user, "app");
  EXPECT_EQ(u->password, "s3cret");
  EXPECT_EQ(u->host, "redis.svc");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 2);
  auto p = ParseRedisUrl("redis://:pw@localhost");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->password, "pw");
  EXPECT_EQ(p->port, 6379);
  EXPECT_FALSE(ParseRedisUrl("http://localhost").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://localhost:99999").ok());
}

TEST(LogTest, LinesAreJsonWithEscapedText) {
  const std::string line = Log::Format("2026-01-01T00:00:00Z", LogLevel::kWarn, "rogatory-intake",
                                       "quote \" and\nnewline", {{"n", 3}, {"ok", true}});
  EXPECT_EQ(line,
            "{\"time\":\"2026-01-01T00:00:00Z\",\"level\":\"warn\",\"service\":\"rogatory-intake\","
            "\"msg\":\"quote \\\" and\\nnewline\",\"n\":3,\"ok\":true}");
}

}  // namespace
}  // namespace rogatory::common
