// Readiness as the calls see Redis (issue 22, item 12), on a scripted fake client.
#include "rogatory/common/redis_readiness.h"

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;

// Answers each command or script at once with the next scripted result (OK by default) and
// remembers what it was sent.
class ScriptedRedis final : public RedisClient {
 public:
  void Command(std::vector<std::string> args, RedisCallback done) override {
    sent.push_back(args[0]);
    done(Next());
  }
  void Eval(const LuaScript& script, std::vector<std::string> keys, std::vector<std::string>,
            RedisCallback done) override {
    sent.push_back("EVALSHA " + script.sha1());
    if (!keys.empty()) last_key = keys[0];
    last_source = script.source();
    done(Next());
  }
  std::deque<absl::StatusOr<RedisReply>> results;
  std::vector<std::string> sent;
  std::string last_key;
  std::string last_source;

 private:
  absl::StatusOr<RedisReply> Next() {
    if (results.empty()) return RedisReply{RedisReply::Type::kInteger, "", 1, {}};
    auto r = std::move(results.front());
    results.pop_front();
    return r;
  }
};

class RedisReadinessTest : public ::testing::Test {
 protected:
  RedisReadinessTest() {
    auto fake = std::make_unique<ScriptedRedis>();
    fake_ = fake.get();
    readiness_ =
        std::make_unique<RedisReadiness>(std::move(fake), "rg:health:intake", absl::Seconds(3));
  }
  absl::Status Probe() {
    absl::Status out = absl::InternalError("probe never answered");
    readiness_->Probe([&out](absl::Status s) { out = s; });
    return out;
  }
  absl::Status Run(std::vector<std::string> args) {
    absl::Status out;
    readiness_->Command(std::move(args),
                        [&out](absl::StatusOr<RedisReply> r) { out = r.status(); });
    return out;
  }

  ScriptedRedis* fake_ = nullptr;
  std::unique_ptr<RedisReadiness> readiness_;
};

TEST_F(RedisReadinessTest, ProbeWritesItsKeyThroughAScript) {
  EXPECT_TRUE(Probe().ok());
  ASSERT_EQ(fake_->sent.size(), 1u);
  EXPECT_THAT(fake_->sent[0], HasSubstr("EVALSHA"));
  EXPECT_EQ(fake_->last_key, "rg:health:intake");
  EXPECT_THAT(fake_->last_source, HasSubstr("SET"));
}

TEST_F(RedisReadinessTest, ProbeThatFailsIsUnavailable) {
  fake_->results.push_back(absl::UnavailableError("redis: LOADING Redis is loading"));
  const absl::Status s = Probe();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("LOADING"));
  // A refused write (not a retryable code) fails it too.
  fake_->results.push_back(absl::InternalError("redis: MISCONF cannot persist"));
  EXPECT_EQ(Probe().code(), absl::StatusCode::kUnavailable);
}

TEST_F(RedisReadinessTest, CallFailingAsUnavailableFailsTheNextProbeOnly) {
  EXPECT_TRUE(Probe().ok());
  fake_->results.push_back(absl::UnavailableError("redis did not answer within 500ms"));
  EXPECT_EQ(Run({"GET", "k"}).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(Run({"GET", "k"}).ok());  // a success later in the window does not clear it
  const absl::Status s = Probe();       // the probe itself succeeds
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("did not answer within 500ms"));
  EXPECT_TRUE(Probe().ok());  // a clean window
  EXPECT_EQ(readiness_->unavailable_failures(), 1);
}

TEST_F(RedisReadinessTest, ScriptFailuresCountAndOtherErrorsDoNot) {
  absl::Status out;
  fake_->results.push_back(absl::UnavailableError("redis connection lost"));
  readiness_->Eval(LuaScript("return 1"), {"k"}, {},
                   [&out](absl::StatusOr<RedisReply> r) { out = r.status(); });
  EXPECT_EQ(out.code(), absl::StatusCode::kUnavailable);  // passed on unchanged
  EXPECT_EQ(Probe().code(), absl::StatusCode::kUnavailable);

  fake_->results.push_back(absl::InternalError("redis: WRONGTYPE"));
  EXPECT_EQ(Run({"INCR", "s"}).code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(Probe().ok());  // a bad command is the caller's fault, not Redis being down
}

// Only outages are UNAVAILABLE (and count against readiness): the error code is the whole
// first word of Redis's reply.
TEST(RedisErrorToStatusTest, RetryableCodesOnlyAsWholeWords) {
  EXPECT_EQ(RedisErrorToStatus("BUSY Redis is busy running a script").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(RedisErrorToStatus("LOADING Redis is loading the dataset in memory").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(RedisErrorToStatus("OOM command not allowed when used memory > 'maxmemory'.").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(RedisErrorToStatus("READONLY You can't write against a read only replica.").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(RedisErrorToStatus("BUSYGROUP Consumer Group name already exists").code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(RedisErrorToStatus("WRONGTYPE Operation against a key").code(),
            absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace rogatory::common
