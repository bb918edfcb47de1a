// The token authenticator through a real in-process gRPC server on port 0, the caller a
// token names, service tokens, and the auth settings' start-up checks.
#include "rogatory/common/token_authenticator.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "auth_fixtures.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rogatory/common/authentication.h"
#include "rogatory/common/platform.h"
#include "rogatory/common/service_token.h"
#include "rogatory/common/test_clock.h"
#include "test_keys.h"

namespace rogatory::common {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
namespace adminpb = rogatory::admin::v1;

constexpr char kSecret[] = "0123456789abcdef0123456789abcdef-dev-secret";

std::string DevKeySetJson() {
  std::string secret;
  absl::Base64Escape(kSecret, &secret);
  return absl::StrCat(R"({"keys":[{"kid":"dev","alg":"HS256","secret":")", secret, R"("}]})");
}

JwtClaims ClaimsFor(const std::string& sub, absl::Time now) {
  JwtClaims c;
  c.issuer = "rogatory-dev";
  c.subject = sub;
  c.audiences = {"rogatory"};
  c.issued_at = now;
  c.expires = now + absl::Hours(1);
  c.state = "DE";
  c.roles = {"executing", "central"};
  return c;
}

// Keeps the caller of the last call the pipeline admitted.
class CapturingAuditor final : public Auditor {
 public:
  void Record(AuditRecord record, std::function<void(absl::Status)> done) override {
    {
      absl::MutexLock lock(&mu_);
      last_ = record.caller;
    }
    done(absl::OkStatus());
  }
  Caller last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }

 private:
  absl::Mutex mu_;
  Caller last_;
};

TEST(CallerFromClaimsTest, NamesTheAuthorityStateAndRoles) {
  auto caller = CallerFromClaims(ClaimsFor("DE-STA-BERLIN", absl::UnixEpoch()));
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->authority_id, "DE-STA-BERLIN");
  EXPECT_EQ(caller->state, "DE");
  EXPECT_THAT(caller->roles, ElementsAre("executing", "central"));
  EXPECT_FALSE(caller->is_service);
}

TEST(CallerFromClaimsTest, RejectsBadSubjectStateAndRoles) {
  JwtClaims c = ClaimsFor("bad subject!", absl::UnixEpoch());
  EXPECT_THAT(std::string(CallerFromClaims(c).status().message()), HasSubstr("claim sub"));
  c = ClaimsFor("DE-1", absl::UnixEpoch());
  c.state = "Germany";
  EXPECT_THAT(std::string(CallerFromClaims(c).status().message()), HasSubstr("claim state"));
  c = ClaimsFor("DE-1", absl::UnixEpoch());
  c.roles = {"admin"};
  EXPECT_THAT(std::string(CallerFromClaims(c).status().message()), HasSubstr("unknown role"));
  EXPECT_EQ(CallerFromClaims(c).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(CallerFromClaimsTest, ServiceRoleOnlyForServiceSubjects) {
  JwtClaims c = ClaimsFor("DE-1", absl::UnixEpoch());
  c.roles = {"service"};
  EXPECT_THAT(std::string(CallerFromClaims(c).status().message()),
              HasSubstr("role service is for Rogatory services"));
  c.subject = "rogatory-routing";
  c.state.clear();
  auto caller = CallerFromClaims(c);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_TRUE(caller->is_service);
  EXPECT_FALSE(IsServiceIdentity("rogatory-"));
  EXPECT_FALSE(IsServiceIdentity("rogatory-Routing"));
  EXPECT_FALSE(IsServiceIdentity("evil-rogatory-routing"));
}

TEST(ServiceTokenSourceTest, ReusesTheTokenThenMintsBeforeItExpires) {
  SimulatedClock clock;
  auto key = *SigningKey::Hmac("dev", kSecret);
  ServiceTokenOptions options;
  options.service = "intake";
  options.ttl = absl::Minutes(3);
  ServiceTokenSource source(clock, key, options);
  const std::string first = *source.Token();
  clock.Advance(absl::Minutes(1));
  EXPECT_EQ(*source.Token(), first);
  clock.Advance(absl::Minutes(1) + absl::Seconds(1));  // past two thirds of its life
  const std::string second = *source.Token();
  EXPECT_NE(second, first);

  auto keys = *KeySet::Parse(DevKeySetJson(), {});
  TokenAuthenticator verifier(clock, {}, keys);
  auto caller = verifier.AuthenticateToken(second);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->authority_id, "rogatory-intake");
  EXPECT_TRUE(caller->is_service);
  clock.Advance(absl::Minutes(4));
  EXPECT_THAT(std::string(verifier.AuthenticateToken(second).status().message()),
              HasSubstr("expired"));
}

class TokenAuthenticatorServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::make_unique<TestClockServiceImpl>(nullptr, pipeline_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = adminpb::TestClockService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(); }

  grpc::Status Call(const std::string& authorization) {
    grpc::ClientContext ctx;
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    ctx.AddMetadata("x-rogatory-authority", "SPOOFED");  // ignored with tokens
    adminpb::GetTimeResponse resp;
    return stub_->GetTime(&ctx, adminpb::GetTimeRequest(), &resp);
  }
  std::string Bearer(const JwtClaims& claims) {
    return absl::StrCat("Bearer ", *MintJwt(*key_, claims));
  }

  SimulatedClock clock_;
  std::shared_ptr<const SigningKey> key_ = *SigningKey::Hmac("dev", kSecret);
  TokenAuthenticator authenticator_{clock_, {}, *KeySet::Parse(DevKeySetJson(), {})};
  NoRateLimiter limiter_;
  CapturingAuditor auditor_;
  Pipeline pipeline_{authenticator_, limiter_, auditor_, clock_};
  std::unique_ptr<TestClockServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<adminpb::TestClockService::Stub> stub_;
  int port_ = 0;
};

TEST_F(TokenAuthenticatorServerTest, CallWithoutTokenIsUnauthenticated) {
  grpc::Status s = Call("");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("no bearer token"));
}

TEST_F(TokenAuthenticatorServerTest, OtherSchemesAreUnauthenticated) {
  grpc::Status s = Call("Basic dXNlcjpwYXNz");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("Bearer"));
}

TEST_F(TokenAuthenticatorServerTest, ValidTokenNamesTheCaller) {
  grpc::Status s = Call(Bearer(ClaimsFor("DE-STA-BERLIN", clock_.Now())));
  // Past authentication, the disabled test clock answers.
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  Caller caller = auditor_.last();
  EXPECT_EQ(caller.authority_id, "DE-STA-BERLIN");
  EXPECT_EQ(caller.state, "DE");
  EXPECT_THAT(caller.roles, ElementsAre("executing", "central"));
}

TEST_F(TokenAuthenticatorServerTest, SchemeIsCaseInsensitive) {
  const std::string token = *MintJwt(*key_, ClaimsFor("DE-1", clock_.Now()));
  EXPECT_EQ(Call(absl::StrCat("bearer ", token)).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(TokenAuthenticatorServerTest, ExpiredTokenIsUnauthenticatedWithoutEchoingIt) {
  const std::string header = Bearer(ClaimsFor("DE-1", clock_.Now()));
  clock_.Advance(absl::Hours(2));
  grpc::Status s = Call(header);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("expired"));
  EXPECT_THAT(s.error_message(), Not(HasSubstr(header.substr(7, 20))));
}

TEST_F(TokenAuthenticatorServerTest, WrongAudienceIsUnauthenticated) {
  JwtClaims c = ClaimsFor("DE-1", clock_.Now());
  c.audiences = {"elsewhere"};
  grpc::Status s = Call(Bearer(c));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("wrong audience"));
}

TEST_F(TokenAuthenticatorServerTest, ReplacedKeySetTakesEffectAtOnce) {
  const std::string header = Bearer(ClaimsFor("DE-1", clock_.Now()));
  std::string other;
  absl::Base64Escape("another-secret-of-at-least-32-bytes!!", &other);
  authenticator_.SetKeys(*KeySet::Parse(
      absl::StrCat(R"({"keys":[{"kid":"dev2","alg":"HS256","secret":")", other, R"("}]})"), {}));
  grpc::Status s = Call(header);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown kid"));
}

// ---- settings ------------------------------------------------------------------------

class AuthSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir();
    dev_keys_ = Write("dev-keys.json", DevKeySetJson());
    auto ec = testing::GenerateKeyPair("EC");
    prod_keys_ =
        Write("prod-keys.json",
              absl::StrCat(R"({"keys":[{"kid":"e1","alg":"ES256","subjects":"services",)",
                           R"("public_key_pem":)", testing::JsonQuote(ec.public_pem), "}]}"));
    prod_signing_ =
        Write("prod-signing.json",
              absl::StrCat(R"({"kid":"e1","alg":"ES256","subjects":"services","private_key_pem":)",
                           testing::JsonQuote(ec.private_pem), "}"));
  }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(dir_, "/", name);
    std::ofstream(path) << text;
    return path;
  }
  // ParseSettingsOrExit's answer for these flags: -1 go on, 2 bad setting.
  int Parse(std::vector<std::string> flags) {
    testing::SettingsParse parsed = testing::ParseTestServiceSettings(std::move(flags));
    stderr_ = std::move(parsed.stderr_text);
    return parsed.code;
  }

  std::string dir_, dev_keys_, prod_keys_, prod_signing_, stderr_;
};

TEST_F(AuthSettingsTest, MetadataAuthIsRefusedInProduction) {
  EXPECT_EQ(Parse({"--env=production", "--auth=metadata"}), 2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'auth'"));
  EXPECT_EQ(Parse({"--auth=metadata"}), -1);
}

TEST_F(AuthSettingsTest, TokenAuthNeedsAKeySet) {
  EXPECT_EQ(Parse({}), 2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'auth-keys'"));
  EXPECT_EQ(Parse({"--auth-keys=" + dev_keys_}), -1);
  EXPECT_EQ(Parse({"--auth-keys=" + dir_ + "/missing.json"}), 2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'auth-keys'"));
}

TEST_F(AuthSettingsTest, ProductionRefusesSharedSecretKeys) {
  EXPECT_EQ(Parse({"--env=production", "--auth-keys=" + dev_keys_}), 2);
  EXPECT_THAT(stderr_, HasSubstr("refused with env=production"));
  EXPECT_EQ(
      Parse({"--env=production", "--auth-keys=" + prod_keys_, "--service-token-key=" + dev_keys_}),
      2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'service-token-key'"));
  EXPECT_EQ(Parse({"--env=production", "--auth-keys=" + prod_keys_,
                   "--service-token-key=" + prod_signing_}),
            -1);
}

TEST_F(AuthSettingsTest, ReloadKeepsThePreviousKeysWhenTheFileIsBad) {
  AuthSettings auth;
  auth.keys_file = Write("reload-keys.json", DevKeySetJson());
  SimulatedClock clock;
  ReloadHooks hooks;
  auto made = MakeAuthentication(auth, false, clock, "intake", hooks);
  ASSERT_TRUE(made.ok()) << made.status();
  auto* verifier = dynamic_cast<TokenAuthenticator*>((*made)->authenticator.get());
  ASSERT_NE(verifier, nullptr);
  auto key = *SigningKey::Hmac("dev", kSecret);
  const std::string token = *MintJwt(*key, ClaimsFor("DE-1", clock.Now()));
  Write("reload-keys.json", "{ broken");
  hooks.RunAll();
  EXPECT_TRUE(verifier->AuthenticateToken(token).ok());
  std::string other;
  absl::Base64Escape("another-secret-of-at-least-32-bytes!!", &other);
  Write("reload-keys.json",
        absl::StrCat(R"({"keys":[{"kid":"dev2","alg":"HS256","secret":")", other, R"("}]})"));
  hooks.RunAll();
  EXPECT_THAT(std::string(verifier->AuthenticateToken(token).status().message()),
              HasSubstr("unknown kid"));
}

}  // namespace
}  // namespace rogatory::common
