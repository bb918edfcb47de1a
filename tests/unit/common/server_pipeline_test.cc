// The handler pipeline and the gRPC metrics, through a real in-process server on port 0.
#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/log_summary.h"
#include "rogatory/common/malformed_requests.h"
#include "rogatory/common/metrics.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/test_clock.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;
namespace adminpb = rogatory::admin::v1;

class ServerPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::make_unique<TestClockServiceImpl>(nullptr, pipeline_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> f;
    f.push_back(metrics_.NewServerInterceptorFactory(clock_, ServedMethodNames(*service_)));
    builder.experimental().SetInterceptorCreators(std::move(f));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> cf;
    cf.push_back(metrics_.NewClientInterceptorFactory(clock_));
    auto channel = grpc::experimental::CreateCustomChannelWithInterceptors(
        "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials(),
        grpc::ChannelArguments(), std::move(cf));
    stub_ = adminpb::TestClockService::NewStub(channel);
  }
  void TearDown() override { server_->Shutdown(); }

  grpc::Status GetTime(bool with_caller) {
    grpc::ClientContext ctx;
    if (with_caller) ctx.AddMetadata("x-rogatory-authority", "OPS-1");
    adminpb::GetTimeResponse resp;
    return stub_->GetTime(&ctx, adminpb::GetTimeRequest(), &resp);
  }

  MetadataAuthenticator authenticator_;
  NoRateLimiter limiter_;
  LogAuditor auditor_;
  SimulatedClock clock_;
  Pipeline pipeline_{authenticator_, limiter_, auditor_, clock_};
  Metrics metrics_;
  std::unique_ptr<TestClockServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<adminpb::TestClockService::Stub> stub_;
  int port_ = 0;
};

TEST_F(ServerPipelineTest, CallWithoutCallerIsUnauthenticated) {
  grpc::Status s = GetTime(false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("x-rogatory-authority"));
}

TEST_F(ServerPipelineTest, DisabledTestClockIsFailedPrecondition) {
  EXPECT_EQ(GetTime(true).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ServerPipelineTest, ServerAndClientMetricsCountEveryCallByCode) {
  GetTime(false);
  GetTime(true);
  GetTime(true);
  const std::string text = metrics_.Render();
  EXPECT_THAT(text, HasSubstr("grpc_server_started_total{grpc_method=\"GetTime\","
                              "grpc_service=\"rogatory.admin.v1.TestClockService\","
                              "grpc_type=\"unary\"} 3"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"Unauthenticated\","
                              "grpc_method=\"GetTime\","
                              "grpc_service=\"rogatory.admin.v1.TestClockService\","
                              "grpc_type=\"unary\"} 1"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"FailedPrecondition\","
                              "grpc_method=\"GetTime\","
                              "grpc_service=\"rogatory.admin.v1.TestClockService\","
                              "grpc_type=\"unary\"} 2"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_count{grpc_method=\"GetTime\""));
  EXPECT_THAT(text, HasSubstr("grpc_client_handled_total{grpc_code=\"FailedPrecondition\""));
  EXPECT_THAT(text, HasSubstr("process_resident_memory_bytes"));
  EXPECT_THAT(text, HasSubstr("process_open_fds"));
}

// The lines of `text` that are series of `family` (not its HELP and TYPE lines).
std::vector<std::string> Series(const std::string& text, const std::string& family) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, family + "{")) out.emplace_back(line);
  }
  return out;
}

TEST_F(ServerPipelineTest, UnknownMethodNamesShareOneLabelValue) {
  // Raw calls to 200 names the server does not serve, with no caller: each answers
  // UNIMPLEMENTED and must not add a series of its own, on the server or the client.
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials());
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> cf;
  cf.push_back(metrics_.NewClientInterceptorFactory(clock_));
  auto intercepted = grpc::experimental::CreateCustomChannelWithInterceptors(
      "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials(),
      grpc::ChannelArguments(), std::move(cf));
  grpc::GenericStub generic(intercepted);
  for (int i = 0; i < 200; ++i) {
    const std::string method =
        i % 2 == 0 ? absl::StrCat("/attacker.Service", i, "/Method", i)
                   : absl::StrCat("/rogatory.admin.v1.TestClockService/NoSuchMethod", i);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1), response;
    grpc::Status status;
    absl::Notification done;
    generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    ASSERT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << method;
  }
  GetTime(false);
  const std::string text = metrics_.Render();
  EXPECT_FALSE(absl::StrContains(text, "attacker")) << "a caller's name is a label value";
  EXPECT_FALSE(absl::StrContains(text, "NoSuchMethod")) << "a caller's name is a label value";
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"Unimplemented\","
                              "grpc_method=\"unknown\",grpc_service=\"unknown\""));
  EXPECT_THAT(text, HasSubstr("grpc_client_handled_total{grpc_code=\"Unimplemented\","
                              "grpc_method=\"unknown\",grpc_service=\"unknown\""));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"Unauthenticated\","
                              "grpc_method=\"GetTime\""));
  // Bounded: the unknown calls add one series per (type, code) to each family, beyond the
  // served methods' own (initialised at start on the server side: one per method, and one
  // more for GetTime's Unauthenticated answer in grpc_server_handled_total).
  const size_t served = ServedMethodNames(*service_).size();
  for (const char* family : {"grpc_server_started_total", "grpc_server_handled_total"}) {
    EXPECT_LE(Series(text, family).size(), served + 3u) << family;
  }
  for (const char* family : {"grpc_client_started_total", "grpc_client_handled_total"}) {
    EXPECT_LE(Series(text, family).size(), 3u) << family;
  }
}

TEST_F(ServerPipelineTest, EveryServedMethodHasSeriesBeforeItsFirstCall) {
  // No call at all: each served method's started, handled (code OK) and latency series
  // exist at zero, as grpc-ecosystem's InitializeMetrics makes them.
  const std::string text = metrics_.Render();
  for (const std::string& method : ServedMethodNames(*service_)) {
    const std::string name = method.substr(method.rfind('/') + 1);
    const std::string labels =
        absl::StrCat("grpc_method=\"", name,
                     "\",grpc_service=\"rogatory.admin.v1.TestClockService\","
                     "grpc_type=\"unary\"}");
    EXPECT_THAT(text, HasSubstr(absl::StrCat("grpc_server_started_total{", labels, " 0")));
    EXPECT_THAT(
        text, HasSubstr(absl::StrCat("grpc_server_handled_total{grpc_code=\"OK\",", labels, " 0")));
    EXPECT_THAT(text, HasSubstr(absl::StrCat("grpc_server_handling_seconds_count{", labels, " 0")));
  }
  EXPECT_THAT(text, HasSubstr("grpc_method=\"AdvanceTime\""));
  // Only the served methods: no other code, and nothing on the client side yet.
  EXPECT_FALSE(absl::StrContains(text, "grpc_code=\"Unauthenticated\""));
  EXPECT_TRUE(Series(text, "grpc_client_started_total").empty());
}

TEST_F(ServerPipelineTest, CallsWithoutCallerAreSummarizedNotLoggedOneLineEach) {
  SimulatedClock clock;
  LogSummary summary(clock, absl::Minutes(1));
  pipeline_.SetRefusalLog(&summary);
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(GetTime(false).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  pipeline_.SetRefusalLog(nullptr);
  const std::vector<std::string> lines = absl::StrSplit(log, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << log;
  EXPECT_THAT(lines[0], HasSubstr("\"kind\":\"unauthenticated\""));
  EXPECT_THAT(lines[0], HasSubstr("\"count\":1,"));
  EXPECT_EQ(summary.pending("unauthenticated"), 199);
}

// Bytes that do not parse, sent without a caller: answered UNAUTHENTICATED (the caller is
// checked first), and summarized like any unauthenticated call, never a line each.
TEST(MalformedRequestLogTest, UnparsableCallsWithoutCallerAreSummarized) {
  MetadataAuthenticator authenticator;
  NoRateLimiter limiter;
  LogAuditor auditor;
  SimulatedClock clock;
  Pipeline pipeline(authenticator, limiter, auditor, clock);
  LogSummary summary(clock, absl::Minutes(1));
  pipeline.SetRefusalLog(&summary);
  TestClockServiceImpl service(nullptr, pipeline);
  AnswerMalformedRequestsWithInvalidArgument(service);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  grpc::GenericStub generic(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  // Field 1, length-delimited, 5 bytes announced and 2 sent: truncated.
  auto call = [&](bool with_caller) {
    grpc::ClientContext ctx;
    if (with_caller) ctx.AddMetadata("x-rogatory-authority", "OPS-1");
    grpc::Slice bytes(
        std::string("\x0a\x05"
                    "ab"));
    grpc::ByteBuffer request(&bytes, 1), response;
    grpc::Status status;
    absl::Notification done;
    generic.UnaryCall(&ctx, "/rogatory.admin.v1.TestClockService/GetTime", grpc::StubOptions(),
                      &request, &response, [&](grpc::Status s) {
                        status = std::move(s);
                        done.Notify();
                      });
    done.WaitForNotification();
    return status;
  };
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(call(false).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  grpc::Status with_caller = call(true);
  const std::string log = ::testing::internal::GetCapturedStderr();
  server->Shutdown();
  EXPECT_EQ(with_caller.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(with_caller.error_message(), HasSubstr("do not parse"));
  const std::vector<std::string> lines = absl::StrSplit(log, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 2u) << log;  // one summary per kind: unauthenticated, unparsable
  EXPECT_FALSE(absl::StrContains(log, "does not call Pipeline::Admit")) << log;
  EXPECT_EQ(summary.pending("unauthenticated"), 99);
}

TEST(MetricsTest, ServedMethodNamesListsEveryMethodOfAService) {
  MetadataAuthenticator authenticator;
  NoRateLimiter limiter;
  LogAuditor auditor;
  SimulatedClock clock;
  Pipeline pipeline(authenticator, limiter, auditor, clock);
  TestClockServiceImpl service(nullptr, pipeline);
  const std::vector<std::string> names = ServedMethodNames(service);
  EXPECT_THAT(names, ::testing::Contains("/rogatory.admin.v1.TestClockService/GetTime"));
  const auto* descriptor = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      "rogatory.admin.v1.TestClockService");
  ASSERT_NE(descriptor, nullptr);
  EXPECT_EQ(names.size(), static_cast<size_t>(descriptor->method_count()));
}

}  // namespace
}  // namespace rogatory::common
