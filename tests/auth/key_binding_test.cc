// Keys bound to subjects (issue 16, item 7): each key of a key set declares what it may
// sign, the services' own tokens (sub rogatory-<service>, role service) or callers'
// tokens (authorities, translators, auditors, operators); a token signed by a key for the
// other kind is UNAUTHENTICATED. `iat` is required, may not lie in the future beyond the
// clock skew, and exp - iat is bounded (1 h for callers, 10 min for services by default).
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "auth_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rogatory/common/authentication.h"
#include "rogatory/common/jwt.h"
#include "rogatory/common/platform.h"
#include "rogatory/common/service_token.h"
#include "rogatory/common/test_clock.h"
#include "rogatory/common/token_authenticator.h"
#include "test_keys.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;

constexpr char kIdpSecret[] = "identity-provider-secret-of-32-bytes-at-least";
constexpr char kServiceSecret[] = "services-own-secret-of-at-least-32-bytes!!";
constexpr char kLegacySecret[] = "legacy-development-secret-of-32-bytes-or-more";

std::string B64(absl::string_view s) {
  std::string out;
  absl::Base64Escape(s, &out);
  return out;
}

// An identity provider's key (authorities), the services' key, and a key that declares
// nothing (development compatibility).
std::string BoundKeySetJson() {
  return absl::StrCat(
      R"({"keys":[{"kid":"idp","alg":"HS256","subjects":"authorities","secret":")", B64(kIdpSecret),
      R"("},{"kid":"svc","alg":"HS256","subjects":"services","secret":")", B64(kServiceSecret),
      R"("},{"kid":"legacy","alg":"HS256","secret":")", B64(kLegacySecret), R"("}]})");
}

using testing::AuthorityClaims;
using testing::ServiceClaims;

class KeyBindingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto keys = KeySet::Parse(BoundKeySetJson(), {});
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = *keys;
    authenticator_ = std::make_unique<TokenAuthenticator>(clock_, TokenAuthOptions{}, keys_);
  }

  absl::StatusOr<Caller> Check(const SigningKey& key, const JwtClaims& claims) {
    auto token = MintJwt(key, claims);
    if (!token.ok()) return token.status();
    return authenticator_->AuthenticateToken(*token);
  }
  static std::string Message(const absl::StatusOr<Caller>& c) {
    return std::string(c.status().message());
  }

  SimulatedClock clock_;
  std::shared_ptr<const KeySet> keys_;
  std::unique_ptr<TokenAuthenticator> authenticator_;
  std::shared_ptr<const SigningKey> idp_ = *SigningKey::Hmac("idp", kIdpSecret);
  std::shared_ptr<const SigningKey> svc_ = *SigningKey::Hmac("svc", kServiceSecret);
  std::shared_ptr<const SigningKey> legacy_ = *SigningKey::Hmac("legacy", kLegacySecret);
};

TEST_F(KeyBindingTest, KeySetRecordsWhatEachKeyMaySign) {
  EXPECT_EQ(keys_->Find("idp")->subjects(), KeySubjects::kAuthorities);
  EXPECT_EQ(keys_->Find("svc")->subjects(), KeySubjects::kServices);
  EXPECT_EQ(keys_->Find("legacy")->subjects(), KeySubjects::kAny);
}

TEST_F(KeyBindingTest, UnknownSubjectsAreRefusedNamingTheKey) {
  auto set = KeySet::Parse(
      absl::StrCat(R"({"keys":[{"kid":"k9","alg":"HS256","subjects":"everyone","secret":")",
                   B64(kIdpSecret), R"("}]})"),
      {});
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("key \"k9\""));
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("\"subjects\""));
}

TEST_F(KeyBindingTest, ProductionKeySetRefusesAKeyThatDeclaresNothing) {
  KeySet::LoadOptions production;
  production.require_subjects = true;
  auto set = KeySet::Parse(BoundKeySetJson(), production);
  ASSERT_FALSE(set.ok());
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("key \"legacy\""));
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("\"subjects\""));
}

TEST_F(KeyBindingTest, EachKindOfTokenVerifiesWithItsOwnKindOfKey) {
  auto authority = Check(*idp_, AuthorityClaims(clock_.Now()));
  ASSERT_TRUE(authority.ok()) << authority.status();
  EXPECT_EQ(authority->authority_id, "FR-TJ-PARIS-JI");
  auto service = Check(*svc_, ServiceClaims(clock_.Now()));
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_TRUE(service->is_service);
}

TEST_F(KeyBindingTest, ServiceTokenSignedByAnAuthoritiesKeyIsUnauthenticated) {
  auto c = Check(*idp_, ServiceClaims(clock_.Now()));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(c), HasSubstr("service token signed by a key for authorities"));
  // A rogatory-* subject without the service role is a service identity all the same.
  JwtClaims impostor = ServiceClaims(clock_.Now());
  impostor.roles = {"operator"};
  c = Check(*idp_, impostor);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(c), HasSubstr("service token signed by a key for authorities"));
}

TEST_F(KeyBindingTest, AuthorityTokenSignedByTheServicesKeyIsUnauthenticated) {
  auto c = Check(*svc_, AuthorityClaims(clock_.Now()));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(c), HasSubstr("signed by the services' key"));
  JwtClaims operator_claims = AuthorityClaims(clock_.Now());
  operator_claims.subject = "ops-1";
  operator_claims.roles = {"operator"};
  EXPECT_EQ(Check(*svc_, operator_claims).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(KeyBindingTest, DevelopmentKeyWithoutSubjectsSignsBothKinds) {
  EXPECT_TRUE(Check(*legacy_, AuthorityClaims(clock_.Now())).ok());
  EXPECT_TRUE(Check(*legacy_, ServiceClaims(clock_.Now())).ok());
}

TEST_F(KeyBindingTest, TokenWithoutIatIsUnauthenticated) {
  JwtClaims c = AuthorityClaims(clock_.Now());
  c.issued_at.reset();
  auto caller = Check(*idp_, c);
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(caller), HasSubstr("no iat claim"));
}

TEST_F(KeyBindingTest, IatInTheFutureBeyondTheSkewIsUnauthenticated) {
  JwtClaims c = AuthorityClaims(clock_.Now());
  c.issued_at = clock_.Now() + absl::Seconds(31);  // the default skew is 30 s
  c.expires = *c.issued_at + absl::Minutes(30);
  auto caller = Check(*idp_, c);
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(caller), HasSubstr("issued in the future (iat)"));
  c.issued_at = clock_.Now() + absl::Seconds(20);  // within the skew
  c.expires = *c.issued_at + absl::Minutes(30);
  EXPECT_TRUE(Check(*idp_, c).ok());
}

TEST_F(KeyBindingTest, AuthorityTokenLivingLongerThanAnHourIsUnauthenticated) {
  JwtClaims c = AuthorityClaims(clock_.Now());
  c.expires = clock_.Now() + absl::Hours(1);
  EXPECT_TRUE(Check(*idp_, c).ok());
  c.expires = clock_.Now() + absl::Hours(1) + absl::Seconds(1);
  auto caller = Check(*idp_, c);
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(caller), HasSubstr("lifetime (exp - iat) longer than 3600s"));
}

TEST_F(KeyBindingTest, ServiceTokenLivingLongerThanTenMinutesIsUnauthenticated) {
  JwtClaims c = ServiceClaims(clock_.Now());
  c.expires = clock_.Now() + absl::Minutes(10);
  EXPECT_TRUE(Check(*svc_, c).ok());
  c.expires = clock_.Now() + absl::Minutes(10) + absl::Seconds(1);
  auto caller = Check(*svc_, c);
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(caller), HasSubstr("lifetime (exp - iat) longer than 600s"));
}

TEST_F(KeyBindingTest, MaximumLifetimesAreConfigurable) {
  TokenAuthOptions options;
  options.max_lifetime = absl::Hours(8);
  options.max_service_lifetime = absl::Minutes(2);
  TokenAuthenticator authenticator(clock_, options, keys_);
  JwtClaims authority = AuthorityClaims(clock_.Now());
  authority.expires = clock_.Now() + absl::Hours(8);
  EXPECT_TRUE(authenticator.AuthenticateToken(*MintJwt(*idp_, authority)).ok());
  JwtClaims service = ServiceClaims(clock_.Now());
  service.expires = clock_.Now() + absl::Minutes(3);
  EXPECT_EQ(authenticator.AuthenticateToken(*MintJwt(*svc_, service)).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(KeyBindingTest, ServiceTokensStayWithinTheServiceMaximum) {
  ServiceTokenOptions options;
  options.service = "routing";
  options.ttl = absl::Minutes(5);
  ServiceTokenSource source(clock_, svc_, options);
  auto token = source.Token();
  ASSERT_TRUE(token.ok()) << token.status();
  auto caller = authenticator_->AuthenticateToken(*token);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->authority_id, "rogatory-routing");
}

TEST_F(KeyBindingTest, SigningKeyFileChoosesTheKeyForItsPurpose) {
  const std::string two_keys = absl::StrCat(
      R"({"keys":[{"kid":"idp","alg":"HS256","subjects":"authorities","secret":")", B64(kIdpSecret),
      R"("},{"kid":"svc","alg":"HS256","subjects":"services","secret":")", B64(kServiceSecret),
      R"("}]})");
  auto services = ParseSigningKey(two_keys, KeySubjects::kServices);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_EQ((*services)->kid(), "svc");
  EXPECT_EQ((*services)->subjects(), KeySubjects::kServices);
  auto authorities = ParseSigningKey(two_keys, KeySubjects::kAuthorities);
  ASSERT_TRUE(authorities.ok()) << authorities.status();
  EXPECT_EQ((*authorities)->kid(), "idp");
  EXPECT_FALSE(ParseSigningKey(two_keys, KeySubjects::kAny).ok());
  // An authorities key cannot become a service's signing key.
  const std::string idp_only =
      absl::StrCat(R"({"kid":"idp","alg":"HS256","subjects":"authorities","secret":")",
                   B64(kIdpSecret), R"("})");
  EXPECT_FALSE(ParseSigningKey(idp_only, KeySubjects::kServices).ok());
}

TEST(DevelopmentKeySetTest, DeclaresWhatEachKeySignsAndMintsBothKinds) {
  KeySet::LoadOptions strict;
  strict.require_subjects = true;
  const std::string path = absl::StrCat(ROGATORY_SOURCE_DIR, "/deploy/dev-auth/keys.json");
  auto keys = KeySet::Load(path, strict);
  ASSERT_TRUE(keys.ok()) << keys.status();
  auto service_key = LoadSigningKey(path, KeySubjects::kServices);
  ASSERT_TRUE(service_key.ok()) << service_key.status();
  auto authority_key = LoadSigningKey(path, KeySubjects::kAuthorities);
  ASSERT_TRUE(authority_key.ok()) << authority_key.status();
  SimulatedClock clock;
  TokenAuthenticator authenticator(clock, {}, *keys);
  EXPECT_TRUE(
      authenticator.AuthenticateToken(*MintJwt(**service_key, ServiceClaims(clock.Now()))).ok());
  EXPECT_TRUE(
      authenticator.AuthenticateToken(*MintJwt(**authority_key, AuthorityClaims(clock.Now())))
          .ok());
  EXPECT_FALSE(
      authenticator.AuthenticateToken(*MintJwt(**authority_key, ServiceClaims(clock.Now()))).ok());
}

// ---- settings ------------------------------------------------------------------------

class KeyBindingSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir();
    auto idp = testing::GenerateKeyPair("EC");
    auto svc = testing::GenerateKeyPair("EC");
    undeclared_ = Write("undeclared.json",
                        absl::StrCat(R"({"keys":[{"kid":"e1","alg":"ES256","public_key_pem":)",
                                     testing::JsonQuote(idp.public_pem), "}]}"));
    declared_ =
        Write("declared.json",
              absl::StrCat(R"({"keys":[{"kid":"e1","alg":"ES256","subjects":"authorities",)",
                           R"("public_key_pem":)", testing::JsonQuote(idp.public_pem), "},",
                           R"({"kid":"s1","alg":"ES256","subjects":"services","public_key_pem":)",
                           testing::JsonQuote(svc.public_pem), "}]}"));
    service_signing_ =
        Write("svc-signing.json",
              absl::StrCat(R"({"kid":"s1","alg":"ES256","subjects":"services","private_key_pem":)",
                           testing::JsonQuote(svc.private_pem), "}"));
  }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(dir_, "/binding-", name);
    std::ofstream(path) << text;
    return path;
  }
  int Parse(std::vector<std::string> flags) {
    testing::SettingsParse parsed = testing::ParseTestServiceSettings(std::move(flags));
    stderr_ = std::move(parsed.stderr_text);
    return parsed.code;
  }
  std::string dir_, undeclared_, declared_, service_signing_, stderr_;
};

TEST_F(KeyBindingSettingsTest, ProductionRefusesKeysThatDeclareNoSubjects) {
  EXPECT_EQ(Parse({"--env=production", "--auth-keys=" + undeclared_}), 2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'auth-keys'"));
  EXPECT_THAT(stderr_, HasSubstr("\"subjects\""));
  EXPECT_EQ(Parse({"--env=production", "--auth-keys=" + declared_,
                   "--service-token-key=" + service_signing_}),
            -1);
  EXPECT_EQ(Parse({"--auth-keys=" + undeclared_}), -1);  // development: both kinds
}

TEST_F(KeyBindingSettingsTest, ProductionServiceTokenKeyMustBeDeclaredForServices) {
  auto key = testing::GenerateKeyPair("EC");
  const std::string undeclared_signing = Write(
      "undeclared-signing.json", absl::StrCat(R"({"kid":"s1","alg":"ES256","private_key_pem":)",
                                              testing::JsonQuote(key.private_pem), "}"));
  const std::string authorities_signing =
      Write("idp-signing.json",
            absl::StrCat(R"({"kid":"e1","alg":"ES256","subjects":"authorities","private_key_pem":)",
                         testing::JsonQuote(key.private_pem), "}"));
  EXPECT_EQ(Parse({"--env=production", "--auth-keys=" + declared_,
                   "--service-token-key=" + undeclared_signing}),
            2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'service-token-key'"));
  EXPECT_EQ(Parse({"--env=production", "--auth-keys=" + declared_,
                   "--service-token-key=" + authorities_signing}),
            2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'service-token-key'"));
  // An authorities key never becomes a service's signing key, in development either.
  EXPECT_EQ(Parse({"--auth-keys=" + declared_, "--service-token-key=" + authorities_signing}), 2);
}

TEST_F(KeyBindingSettingsTest, MaximumLifetimesAreSettings) {
  EXPECT_EQ(Parse({"--auth-keys=" + declared_, "--auth-max-token-lifetime=8h",
                   "--auth-max-service-token-lifetime=2m"}),
            -1);
  EXPECT_EQ(Parse({"--auth-keys=" + declared_, "--auth-max-token-lifetime=forever"}), 2);
  EXPECT_THAT(stderr_, HasSubstr("auth-max-token-lifetime"));
}

}  // namespace
}  // namespace rogatory::common
