// The per-caller token bucket, driven by a fake steady clock.
#include "rogatory/common/rate_limiter.h"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/cord.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "rogatory/common/config.h"
#include "rogatory/common/platform.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;

class RateLimiterTest : public ::testing::Test {
 protected:
  TokenBucketRateLimiter Make(double rps, int burst, size_t max_callers = 100000) {
    RateLimitOptions o;
    o.rate_per_second = rps;
    o.burst = burst;
    o.max_callers = max_callers;
    return TokenBucketRateLimiter(o, clock_);
  }
  static Caller Named(std::string id) {
    Caller c;
    c.authority_id = std::move(id);
    return c;
  }
  void Advance(std::chrono::milliseconds d) { clock_.Advance(absl::FromChrono(d)); }

  SimulatedClock clock_;
};

TEST_F(RateLimiterTest, BurstIsAdmittedThenExhaustedWithRetryInfo) {
  auto limiter = Make(2, 3);
  const Caller a = Named("AUTH-A");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit(a, "M").ok()) << i;
  absl::Status s = limiter.Admit(a, "M");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("rate limit"));
  // The reason a UI switches on (errors.proto), next to when to retry.
  auto reason = GetErrorInfo(ToGrpcStatus(s));
  ASSERT_TRUE(reason.has_value());
  EXPECT_EQ(reason->domain(), "rogatory");
  EXPECT_EQ(reason->reason(), "RATE_LIMITED");
  auto payload = s.GetPayload("type.googleapis.com/google.rpc.RetryInfo");
  ASSERT_TRUE(payload.has_value());
  google::rpc::RetryInfo info;
  ASSERT_TRUE(info.ParseFromString(std::string(*payload)));
  // One token comes back after 1/2 s.
  EXPECT_EQ(info.retry_delay().seconds(), 0);
  EXPECT_EQ(info.retry_delay().nanos(), 500'000'000);
}

TEST_F(RateLimiterTest, TokensComeBackAtTheRate) {
  auto limiter = Make(10, 1);
  const Caller a = Named("AUTH-A");
  EXPECT_TRUE(limiter.Admit(a, "M").ok());
  EXPECT_FALSE(limiter.Admit(a, "M").ok());
  Advance(std::chrono::milliseconds(50));
  EXPECT_FALSE(limiter.Admit(a, "M").ok());
  Advance(std::chrono::milliseconds(50));
  EXPECT_TRUE(limiter.Admit(a, "M").ok());
  EXPECT_FALSE(limiter.Admit(a, "M").ok());
  // Idle for long: the bucket refills to the burst only.
  Advance(std::chrono::seconds(100));
  EXPECT_TRUE(limiter.Admit(a, "M").ok());
  EXPECT_FALSE(limiter.Admit(a, "M").ok());
}

TEST_F(RateLimiterTest, EachCallerHasItsOwnBucket) {
  auto limiter = Make(1, 1);
  EXPECT_TRUE(limiter.Admit(Named("AUTH-A"), "M").ok());
  EXPECT_FALSE(limiter.Admit(Named("AUTH-A"), "M").ok());
  EXPECT_TRUE(limiter.Admit(Named("AUTH-B"), "M").ok());
}

TEST_F(RateLimiterTest, ZeroRateTurnsLimitingOff) {
  auto limiter = Make(0, 1);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Admit(Named("AUTH-A"), "M").ok());
  EXPECT_EQ(limiter.tracked_callers(), 0u);
}

TEST_F(RateLimiterTest, RogatoryServicesAreNotLimited) {
  auto limiter = Make(1, 1);
  Caller relay = Named("rogatory-intake");
  relay.is_service = true;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(limiter.Admit(relay, "Deliver").ok());
}

TEST_F(RateLimiterTest, IdleCallersAreForgottenSoMemoryStaysBounded) {
  auto limiter = Make(100, 1);
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(limiter.Admit(Named("AUTH-" + std::to_string(i)), "M").ok());
    Advance(std::chrono::milliseconds(1));
  }
  // Buckets refill in 10 ms here, so sweeps keep only the recent callers.
  EXPECT_LE(limiter.tracked_callers(), 2048u);
}

TEST_F(RateLimiterTest, TooManyBusyCallersAreRefusedNotTracked) {
  auto limiter = Make(1, 1, /*max_callers=*/3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(limiter.Admit(Named(std::to_string(i)), "M").ok());
  absl::Status s = limiter.Admit(Named("new"), "M");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(limiter.tracked_callers(), 3u);
}

// Rate limits are on by default in production (issue 16 item 11): rate-limit-rps left unset
// is 20 per second with env=production and off in development; a value set by flag or
// environment wins in both.
class RateLimitSettingsTest : public ::testing::Test {
 protected:
  ServerSettings Parse(std::vector<std::string> flags,
                       std::map<std::string, std::string> env = {}) {
    const ServiceIdentity id{"rogatory-test", "test",        "rogatory.test.v1.Test",
                             "127.0.0.1:0",   "127.0.0.1:0", ""};
    Config config;
    ServerSettings settings;
    RegisterServerSettings(id, config, &settings);
    flags.insert(flags.begin(), "rogatory-test");
    std::vector<const char*> argv;
    for (const auto& f : flags) argv.push_back(f.c_str());
    const absl::Status parsed =
        config.Parse(static_cast<int>(argv.size()), argv.data(),
                     [env](const std::string& name) -> std::optional<std::string> {
                       auto it = env.find(name);
                       if (it == env.end()) return std::nullopt;
                       return it->second;
                     });
    EXPECT_TRUE(parsed.ok()) << parsed;
    ApplyEnvironmentDefaults(&settings);
    return settings;
  }
};

TEST_F(RateLimitSettingsTest, ProductionLimitsEveryCallerUnlessTheSettingIsGiven) {
  const ServerSettings prod = Parse({"--env=production"});
  EXPECT_EQ(prod.rate_limit_rps, kProductionRateLimitRps);
  EXPECT_EQ(prod.rate_limit_rps, 20);
  EXPECT_EQ(prod.rate_limit_burst, 50);
  EXPECT_EQ(Parse({"--env=production", "--rate-limit-rps=0"}).rate_limit_rps, 0);
  EXPECT_EQ(Parse({"--env=production", "--rate-limit-rps=200"}).rate_limit_rps, 200);
  EXPECT_EQ(Parse({"--env=production"}, {{"ROGATORY_RATE_LIMIT_RPS", "5"}}).rate_limit_rps, 5);
}

TEST_F(RateLimitSettingsTest, DevelopmentLeavesRateLimitsOffUnlessTheSettingIsGiven) {
  EXPECT_EQ(Parse({}).rate_limit_rps, 0);
  EXPECT_EQ(Parse({"--rate-limit-rps=7"}).rate_limit_rps, 7);
}

}  // namespace
}  // namespace rogatory::common
