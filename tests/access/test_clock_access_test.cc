// Who may move the shared test clock (issue 16, item 1): rogatory.admin.v1.TestClockService,
// which every service serves from common/, through a real in-process server on port 0 and a
// fake Redis that records what reached it. Every role that is neither operator nor service
// is refused with PERMISSION_DENIED and the clock's Redis key is never written; operators
// and Rogatory services move it; everyone may read it.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/test_clock.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;
namespace adminpb = rogatory::admin::v1;

// Holds the test clock's offset like Redis would, and remembers every command.
class FakeClockRedis final : public RedisClient {
 public:
  void Command(std::vector<std::string> args, RedisCallback done) override {
    RedisReply reply;
    {
      absl::MutexLock lock(&mu_);
      sent_.push_back(args[0]);
      if (args[0] == "INCRBY") {
        offset_ += std::stoll(args[2]);
        reply.type = RedisReply::Type::kInteger;
        reply.integer = offset_;
      } else if (args[0] == "GET") {
        reply.type = RedisReply::Type::kString;
        reply.str = std::to_string(offset_);
      }
    }
    done(reply);
  }
  void Eval(const LuaScript&, std::vector<std::string>, std::vector<std::string> args,
            RedisCallback done) override {
    RedisReply reply{RedisReply::Type::kArray, "", 0, {}};
    {
      absl::MutexLock lock(&mu_);
      sent_.push_back("EVALSHA");
      const int64_t wanted = std::stoll(args[0]);
      const bool raised = wanted >= offset_;
      if (raised) offset_ = wanted;
      reply.elements.push_back({RedisReply::Type::kInteger, "", raised ? 1 : 0, {}});
      reply.elements.push_back({RedisReply::Type::kString, std::to_string(offset_), 0, {}});
    }
    done(reply);
  }
  // Commands other than reads (GET): the ones that move the clock.
  int writes() const {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& c : sent_) n += c != "GET";
    return n;
  }
  int64_t offset_us() const {
    absl::MutexLock lock(&mu_);
    return offset_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> sent_ ABSL_GUARDED_BY(mu_);
  int64_t offset_ ABSL_GUARDED_BY(mu_) = 0;
};

struct Role {
  std::string name;
  std::string authority;
  std::string roles;  // x-rogatory-roles
  bool may_move;
};

// Every role a token can carry, one at a time, plus a Rogatory service.
const std::vector<Role>& Roles() {
  static const auto* roles = new std::vector<Role>{
      {"issuing", "FR-TJ-PARIS-JI", "issuing", false},
      {"central", "DE-BFJ", "central", false},
      {"executing", "DE-STA-MUENCHEN", "executing", false},
      {"translator", "XL-FR-DE-1", "translator", false},
      {"auditor", "EU-AUDIT-1", "auditor", false},
      {"no role", "FR-SOMEONE", "", false},
      {"operator", "OPS-1", "operator", true},
      {"service", "rogatory-deadlines", "service", true},
  };
  return *roles;
}

class TestClockAccessTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    // With the clock enabled, and (GetParam() false) disabled: the refusal comes first.
    if (GetParam()) clock_ = std::make_unique<SharedTestClock>(redis_, base_);
    service_ = std::make_unique<TestClockServiceImpl>(clock_.get(), pipeline_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = adminpb::TestClockService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(); }

  void As(const Role& role, grpc::ClientContext& ctx) {
    ctx.AddMetadata("x-rogatory-authority", role.authority);
    ctx.AddMetadata("x-rogatory-roles", role.roles);
  }
  grpc::Status Advance(const Role& role, int64_t seconds) {
    grpc::ClientContext ctx;
    As(role, ctx);
    adminpb::AdvanceTimeRequest req;
    req.mutable_by()->set_seconds(seconds);
    adminpb::AdvanceTimeResponse resp;
    return stub_->AdvanceTime(&ctx, req, &resp);
  }
  grpc::Status Set(const Role& role, int64_t unix_seconds) {
    grpc::ClientContext ctx;
    As(role, ctx);
    adminpb::SetTimeRequest req;
    req.mutable_now()->set_seconds(unix_seconds);
    adminpb::SetTimeResponse resp;
    return stub_->SetTime(&ctx, req, &resp);
  }
  grpc::Status Get(const Role& role) {
    grpc::ClientContext ctx;
    As(role, ctx);
    adminpb::GetTimeResponse resp;
    return stub_->GetTime(&ctx, adminpb::GetTimeRequest(), &resp);
  }

  FakeClockRedis redis_;
  SimulatedClock base_;
  std::unique_ptr<SharedTestClock> clock_;
  MetadataAuthenticator authenticator_;
  NoRateLimiter limiter_;
  LogAuditor auditor_;
  Pipeline pipeline_{authenticator_, limiter_, auditor_, base_};
  std::unique_ptr<TestClockServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<adminpb::TestClockService::Stub> stub_;
  int port_ = 0;
};

TEST_P(TestClockAccessTest, OnlyOperatorsAndServicesMoveTheClock) {
  const bool enabled = GetParam();
  const int64_t day = 24 * 3600;
  std::map<std::string, std::string> mismatches;
  int64_t later = absl::ToUnixSeconds(base_.Now());
  for (const Role& role : Roles()) {
    // SetTime after the 400 days AdvanceTime may have moved: always a forward move.
    later += 1000 * day;
    for (const auto& [what, status] : std::vector<std::pair<std::string, grpc::Status>>{
             {"AdvanceTime", Advance(role, 400 * day)}, {"SetTime", Set(role, later)}}) {
      grpc::StatusCode want = grpc::StatusCode::PERMISSION_DENIED;
      if (role.may_move) {
        want = enabled ? grpc::StatusCode::OK : grpc::StatusCode::FAILED_PRECONDITION;
      }
      if (status.error_code() != want) {
        mismatches[role.name + " " + what] =
            std::to_string(status.error_code()) + " " + status.error_message();
      }
      if (!role.may_move) {
        EXPECT_THAT(status.error_message(), HasSubstr("only operators may"));
      }
    }
  }
  EXPECT_TRUE(mismatches.empty()) << ::testing::PrintToString(mismatches);
}

TEST_P(TestClockAccessTest, RefusedMovesNeverReachTheSharedClock) {
  for (const Role& role : Roles()) {
    if (role.may_move) continue;
    Advance(role, 400 * 24 * 3600);
    Set(role, 9'000'000'000);
  }
  EXPECT_EQ(redis_.writes(), 0);
  EXPECT_EQ(redis_.offset_us(), 0);
}

TEST_P(TestClockAccessTest, RefusalComesBeforeTheInputIsChecked) {
  const Role& translator = Roles()[3];
  ASSERT_EQ(translator.name, "translator");
  // A negative duration is INVALID_ARGUMENT for an operator, but a translator learns only
  // that it may not move the clock.
  EXPECT_EQ(Advance(translator, -5).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Set(translator, -5).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  const Role& op = Roles()[6];
  ASSERT_EQ(op.name, "operator");
  if (GetParam()) {
    EXPECT_EQ(Advance(op, -5).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(Set(op, -5).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_P(TestClockAccessTest, EveryoneMayReadTheClock) {
  const grpc::StatusCode want =
      GetParam() ? grpc::StatusCode::OK : grpc::StatusCode::FAILED_PRECONDITION;
  for (const Role& role : Roles()) EXPECT_EQ(Get(role).error_code(), want) << role.name;
}

TEST_P(TestClockAccessTest, OperatorMovesTheSharedOffsetOfAnEnabledClockOnly) {
  const grpc::Status moved = Advance(Roles()[6], 3600);
  if (GetParam()) {
    ASSERT_TRUE(moved.ok()) << moved.error_message();
    EXPECT_EQ(redis_.offset_us(), int64_t{3600} * 1'000'000);
  } else {
    EXPECT_EQ(moved.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(redis_.writes(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(EnabledAndDisabled, TestClockAccessTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Enabled" : "Disabled"; });

}  // namespace
}  // namespace rogatory::common
