// The handler pipeline and the gRPC metrics, through a real in-process server on port 0.
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
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
    f.push_back(metrics_.NewServerInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(f));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> cf;
    cf.push_back(metrics_.NewClientInterceptorFactory());
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
  Pipeline pipeline_{authenticator_, limiter_, auditor_};
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

}  // namespace
}  // namespace rogatory::common
