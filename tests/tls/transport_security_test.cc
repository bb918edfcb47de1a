// Transport security settings and credentials, with real certificates from
// deploy/tls/make-certs.sh and real in-process servers on loopback ports.
#include "rogatory/common/transport_security.h"

#include <cstdlib>
#include <filesystem>
#include <future>

#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rogatory/admin/v1/test_clock.grpc.pb.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;
namespace adminpb = rogatory::admin::v1;
namespace fs = std::filesystem;

// Answers GetTime with ABORTED carrying the caller's certificate identity ("<none>"
// without one), so the client sees what the server read.
class IdentityEcho final : public adminpb::TestClockService::CallbackService {
  grpc::ServerUnaryReactor* GetTime(grpc::CallbackServerContext* ctx,
                                    const adminpb::GetTimeRequest*,
                                    adminpb::GetTimeResponse*) override {
    const std::optional<std::string> identity = PeerCertificateIdentity(*ctx);
    const std::vector<std::string> names = PeerCertificateNames(*ctx);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(
        grpc::Status(grpc::StatusCode::ABORTED,
                     identity.value_or("<none>") + " names=" + std::to_string(names.size())));
    return reactor;
  }
};

class TransportSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("rogatory-tls-test-" + std::to_string(::getpid())));
    const std::string command =
        std::string(ROGATORY_MAKE_CERTS) + " " + dir_->string() + " >/dev/null";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string File(const std::string& name) { return (*dir_ / name).string(); }

  static TlsSettings Mutual(const std::string& service) {
    TlsSettings tls;
    tls.mode = "mtls";
    tls.cert_file = File(service + ".crt");
    tls.key_file = File(service + ".key");
    tls.ca_file = File("ca.crt");
    return tls;
  }

  // Starts an IdentityEcho server with `credentials` on a free loopback port.
  void Serve(std::shared_ptr<grpc::ServerCredentials> credentials) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", std::move(credentials), &port_);
    builder.RegisterService(&echo_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  grpc::Status Call(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto stub = adminpb::TestClockService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), std::move(credentials)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    adminpb::GetTimeResponse resp;
    return stub->GetTime(&ctx, adminpb::GetTimeRequest(), &resp);
  }

  static fs::path* dir_;
  IdentityEcho echo_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

fs::path* TransportSecurityTest::dir_ = nullptr;

TEST_F(TransportSecurityTest, OffNeedsNoFilesAndNoHealthPort) {
  TlsSettings tls;
  EXPECT_TRUE(ValidateTransportSettings(tls, "127.0.0.1:50051", "").ok());
  EXPECT_EQ(*HealthListenAddress(tls, "127.0.0.1:50051", ""), "");
}

TEST_F(TransportSecurityTest, CompleteMutualSettingsAreValid) {
  EXPECT_TRUE(ValidateTransportSettings(Mutual("intake"), "0.0.0.0:50051", "").ok());
}

TEST_F(TransportSecurityTest, TlsWithoutCertificateNamesTlsCertFile) {
  TlsSettings tls;
  tls.mode = "tls";
  tls.key_file = File("intake.key");
  absl::Status s = ValidateTransportSettings(tls, "127.0.0.1:50051", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("setting 'tls-cert-file'"));
}

TEST_F(TransportSecurityTest, MissingFileNamesItsSettingAndPath) {
  TlsSettings tls = Mutual("intake");
  tls.ca_file = File("absent.crt");
  absl::Status s = ValidateTransportSettings(tls, "127.0.0.1:50051", "");
  EXPECT_THAT(s.message(), HasSubstr("setting 'tls-ca-file'"));
  EXPECT_THAT(s.message(), HasSubstr("absent.crt"));
}

TEST_F(TransportSecurityTest, FileThatIsNoCertificateIsRefused) {
  TlsSettings tls = Mutual("intake");
  tls.cert_file = File("intake.key");
  EXPECT_THAT(ValidateTransportSettings(tls, "127.0.0.1:50051", "").message(),
              HasSubstr("setting 'tls-cert-file'"));
}

TEST_F(TransportSecurityTest, KeyOfAnotherCertificateNamesTlsKeyFile) {
  TlsSettings tls = Mutual("intake");
  tls.key_file = File("routing.key");
  absl::Status s = ValidateTransportSettings(tls, "127.0.0.1:50051", "");
  EXPECT_THAT(s.message(), HasSubstr("setting 'tls-key-file'"));
  EXPECT_THAT(s.message(), HasSubstr("does not match"));
}

TEST_F(TransportSecurityTest, MutualWithoutCaNamesTlsCaFile) {
  TlsSettings tls = Mutual("intake");
  tls.ca_file.clear();
  EXPECT_THAT(ValidateTransportSettings(tls, "127.0.0.1:50051", "").message(),
              HasSubstr("setting 'tls-ca-file'"));
}

TEST_F(TransportSecurityTest, ClientCertificateWithoutKeyNamesTheMissingOne) {
  TlsSettings tls = Mutual("intake");
  tls.client_cert_file = File("client.crt");
  EXPECT_THAT(ValidateTransportSettings(tls, "127.0.0.1:50051", "").message(),
              HasSubstr("setting 'tls-client-key-file'"));
  tls.client_key_file = File("intake.key");
  EXPECT_THAT(ValidateTransportSettings(tls, "127.0.0.1:50051", "").message(),
              HasSubstr("setting 'tls-client-key-file'"));
  tls.client_key_file = File("client.key");
  EXPECT_TRUE(ValidateTransportSettings(tls, "127.0.0.1:50051", "").ok());
}

TEST_F(TransportSecurityTest, HealthListenDefaultsToListenPortPlus1000WithTls) {
  TlsSettings tls = Mutual("intake");
  EXPECT_EQ(*HealthListenAddress(tls, "0.0.0.0:50051", ""), "0.0.0.0:51051");
  EXPECT_EQ(*HealthListenAddress(tls, "[::]:50052", ""), "[::]:51052");
  EXPECT_EQ(*HealthListenAddress(tls, "0.0.0.0:50051", "0.0.0.0:8086"), "0.0.0.0:8086");
}

TEST_F(TransportSecurityTest, UnusableHealthListenIsRefused) {
  TlsSettings tls = Mutual("intake");
  EXPECT_THAT(HealthListenAddress(tls, "127.0.0.1:0", "").status().message(),
              HasSubstr("setting 'health-listen'"));
  EXPECT_THAT(HealthListenAddress(tls, "127.0.0.1:50051", "nonsense").status().message(),
              HasSubstr("setting 'health-listen'"));
  EXPECT_THAT(HealthListenAddress(tls, "127.0.0.1:50051", "127.0.0.1:50051").status().message(),
              HasSubstr("must differ"));
  EXPECT_THAT(ValidateTransportSettings(tls, "127.0.0.1:65000", "").message(),
              HasSubstr("setting 'health-listen'"));
}

TEST_F(TransportSecurityTest, MutualTlsCallerIsIdentifiedByCertificateCommonName) {
  Serve(MakeServerCredentials(Mutual("routing")));
  // The intake service's client credentials: its own certificate (serverAuth+clientAuth).
  grpc::Status s = Call(MakeChannelCredentials(Mutual("intake")));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  // CN plus the five subject alternative names.
  EXPECT_EQ(s.error_message(), "rogatory-intake names=6");
}

TEST_F(TransportSecurityTest, SeparateClientCertificateIsPresentedWhenSet) {
  Serve(MakeServerCredentials(Mutual("routing")));
  TlsSettings client = Mutual("intake");
  client.client_cert_file = File("client.crt");
  client.client_key_file = File("client.key");
  grpc::Status s = Call(MakeChannelCredentials(client));
  EXPECT_EQ(s.error_message(), "rogatory-test-client names=1");
}

TEST_F(TransportSecurityTest, ClientWithoutCertificateIsRefusedByMutualTls) {
  Serve(MakeServerCredentials(Mutual("routing")));
  TlsSettings server_only = Mutual("intake");
  server_only.mode = "tls";  // verifies the server, presents no certificate
  EXPECT_EQ(Call(MakeChannelCredentials(server_only)).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Call(grpc::InsecureChannelCredentials()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TransportSecurityTest, ServerSideTlsCallerHasNoCertificateIdentity) {
  TlsSettings tls = Mutual("routing");
  tls.mode = "tls";
  Serve(MakeServerCredentials(tls));
  grpc::Status s = Call(MakeChannelCredentials(tls));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  EXPECT_EQ(s.error_message(), "<none> names=0");
}

TEST_F(TransportSecurityTest, PlaintextCallerHasNoCertificateIdentity) {
  Serve(MakeServerCredentials(TlsSettings()));
  EXPECT_EQ(Call(MakeChannelCredentials(TlsSettings())).error_message(), "<none> names=0");
}

TEST_F(TransportSecurityTest, ServerCertificateNotNamingTheTargetIsRefused) {
  // The client certificate names no host: a server presenting it fails host verification.
  TlsSettings server = Mutual("routing");
  server.mode = "tls";
  server.cert_file = File("client.crt");
  server.key_file = File("client.key");
  Serve(MakeServerCredentials(server));
  TlsSettings client = Mutual("intake");
  client.mode = "tls";
  EXPECT_EQ(Call(MakeChannelCredentials(client)).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// A unary call by method name, with an empty request; returns its status.
grpc::Status GenericCall(int port, const std::string& method) {
  grpc::GenericStub stub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::ByteBuffer request;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

TEST_F(TransportSecurityTest, ProbeServerServesHealthAndNothingElse) {
  // As in Platform::Serve: the reflection plugin is registered for every builder.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  TlsSettings tls = Mutual("intake");
  auto probe = StartProbeServer(tls, "127.0.0.1:50051", "127.0.0.1:0");
  // Port 0 is refused by the address check: probes need a known port.
  EXPECT_FALSE(probe.ok());
  int port = 0;
  {
    grpc::ServerBuilder b;  // find a free port, then free it
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.BuildAndStart()->Shutdown();
  }
  probe = StartProbeServer(tls, "127.0.0.1:50051", "127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(probe.ok()) << probe.status();
  ASSERT_NE(*probe, nullptr);
  (*probe)->GetHealthCheckService()->SetServingStatus("", true);
  EXPECT_TRUE(GenericCall(port, "/grpc.health.v1.Health/Check").ok());
  EXPECT_EQ(GenericCall(port, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
                .error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(GenericCall(port, "/rogatory.admin.v1.TestClockService/GetTime").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  (*probe)->Shutdown();
}

}  // namespace
}  // namespace rogatory::common
