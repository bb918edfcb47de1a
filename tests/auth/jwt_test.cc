// JWT verification and minting with HS256, RS256 and ES256 keys generated at test time.
#include "rogatory/common/jwt.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "auth_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_keys.h"

namespace rogatory::common {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "0123456789abcdef0123456789abcdef-dev-secret";
const absl::Time kNow = absl::FromUnixSeconds(1767225600);  // 2026-01-01

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new testing::PemPair(testing::GenerateKeyPair("RSA"));
    ec_ = new testing::PemPair(testing::GenerateKeyPair("EC"));
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ec_;
  }

  void SetUp() override {
    ASSERT_FALSE(rsa_->public_pem.empty());
    ASSERT_FALSE(ec_->public_pem.empty());
    hs_ = *SigningKey::Hmac("dev", kSecret);
    rs_ = *SigningKey::FromPem("k1", JwtAlg::kRs256, rsa_->private_pem);
    es_ = *SigningKey::FromPem("e1", JwtAlg::kEs256, ec_->private_pem);
    auto keys = KeySet::Parse(KeySetJson(), {});
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = *keys;
    options_.issuer = "rogatory-dev";
    options_.audience = "rogatory";
    options_.now = kNow;
  }

  static std::string KeySetJson() {
    std::string secret;
    absl::Base64Escape(kSecret, &secret);
    return absl::StrCat(R"({"keys":[{"kid":"dev","alg":"HS256","secret":")", secret, R"("},)",
                        R"({"kid":"k1","alg":"RS256","public_key_pem":)",
                        testing::JsonQuote(rsa_->public_pem), "},",
                        R"({"kid":"e1","alg":"ES256","public_key_pem":)",
                        testing::JsonQuote(ec_->public_pem), "}]}");
  }

  // An issuing authority's token, valid for an hour.
  static JwtClaims Claims() {
    JwtClaims c = testing::AuthorityClaims(kNow);
    c.expires = kNow + absl::Hours(1);
    return c;
  }

  // A token with the given header and payload JSON, signed by `key` over them.
  static std::string Raw(const std::string& header, const std::string& payload,
                         const SigningKey& key) {
    const std::string input = absl::StrCat(Base64UrlEncode(header), ".", Base64UrlEncode(payload));
    return absl::StrCat(input, ".", Base64UrlEncode(*key.Sign(input)));
  }

  absl::StatusOr<JwtClaims> Verify(const std::string& token) {
    return VerifyJwt(token, *keys_, options_);
  }

  static testing::PemPair* rsa_;
  static testing::PemPair* ec_;
  std::shared_ptr<const SigningKey> hs_, rs_, es_;
  std::shared_ptr<const KeySet> keys_;
  VerifyOptions options_;
};
testing::PemPair* JwtTest::rsa_ = nullptr;
testing::PemPair* JwtTest::ec_ = nullptr;

void ExpectRejected(const absl::StatusOr<JwtClaims>& r, const std::string& why) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(why));
}

TEST(Base64UrlTest, RoundTripsEveryLength) {
  std::string data;
  for (int i = 0; i < 40; ++i) {
    auto decoded = Base64UrlDecode(Base64UrlEncode(data));
    ASSERT_TRUE(decoded.ok()) << i;
    EXPECT_EQ(*decoded, data);
    data.push_back(static_cast<char>(0xf0 + i));
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
}

TEST(Base64UrlTest, RejectsPaddingOtherAlphabetsAndStrayBits) {
  EXPECT_FALSE(Base64UrlDecode("YQ==").ok());
  EXPECT_FALSE(Base64UrlDecode("+/8").ok());
  EXPECT_FALSE(Base64UrlDecode("Y Q").ok());
  EXPECT_FALSE(Base64UrlDecode("Y").ok());   // impossible length
  EXPECT_FALSE(Base64UrlDecode("YR").ok());  // unused bits set
  EXPECT_EQ(*Base64UrlDecode("YQ"), "a");
}

TEST_F(JwtTest, ValidTokenOfEachAlgorithmVerifies) {
  for (const auto* key : {hs_.get(), rs_.get(), es_.get()}) {
    auto token = MintJwt(*key, Claims());
    ASSERT_TRUE(token.ok()) << token.status();
    auto claims = Verify(*token);
    ASSERT_TRUE(claims.ok()) << JwtAlgName(key->alg()) << ": " << claims.status();
    EXPECT_EQ(claims->subject, "FR-TJ-PARIS-JI");
    EXPECT_EQ(claims->state, "FR");
    EXPECT_THAT(claims->roles, ElementsAre("issuing"));
    EXPECT_EQ(claims->expires, kNow + absl::Hours(1));
  }
}

TEST_F(JwtTest, AudienceMayBeAnArrayContainingOurs) {
  JwtClaims c = Claims();
  c.audiences = {"other", "rogatory"};
  EXPECT_TRUE(Verify(*MintJwt(*es_, c)).ok());
}

TEST_F(JwtTest, ExpiredTokenIsRejectedAfterTheLeeway) {
  JwtClaims c = Claims();
  c.expires = kNow - absl::Seconds(10);  // within the 30 s leeway
  EXPECT_TRUE(Verify(*MintJwt(*hs_, c)).ok());
  c.expires = kNow - absl::Minutes(5);
  ExpectRejected(Verify(*MintJwt(*hs_, c)), "expired");
}

TEST_F(JwtTest, TokenWithoutExpiryIsRejected) {
  JwtClaims c = Claims();
  c.expires.reset();
  ExpectRejected(Verify(*MintJwt(*hs_, c)), "no exp");
}

TEST_F(JwtTest, TokenNotYetValidIsRejected) {
  JwtClaims c = Claims();
  c.not_before = kNow + absl::Minutes(5);
  ExpectRejected(Verify(*MintJwt(*rs_, c)), "not yet valid");
  c.not_before = kNow + absl::Seconds(10);  // within the leeway
  EXPECT_TRUE(Verify(*MintJwt(*rs_, c)).ok());
}

TEST_F(JwtTest, WrongAudienceIsRejected) {
  JwtClaims c = Claims();
  c.audiences = {"another-system"};
  ExpectRejected(Verify(*MintJwt(*hs_, c)), "wrong audience");
  c.audiences.clear();
  ExpectRejected(Verify(*MintJwt(*hs_, c)), "wrong audience");
}

TEST_F(JwtTest, WrongIssuerIsRejected) {
  JwtClaims c = Claims();
  c.issuer = "someone-else";
  ExpectRejected(Verify(*MintJwt(*es_, c)), "wrong issuer");
}

TEST_F(JwtTest, BadSignatureIsRejectedForEachAlgorithm) {
  for (const auto* key : {hs_.get(), rs_.get(), es_.get()}) {
    std::string token = *MintJwt(*key, Claims());
    // Another payload under the original signature.
    JwtClaims c = Claims();
    c.roles = {"operator"};
    const std::string forged = *MintJwt(*key, c);
    const std::string spliced =
        absl::StrCat(forged.substr(0, forged.rfind('.')), token.substr(token.rfind('.')));
    ExpectRejected(Verify(spliced), "bad signature");
  }
  // A key of the same kid and algorithm that is not ours.
  auto stranger = *SigningKey::Hmac("dev", "another-secret-of-at-least-32-bytes!!");
  ExpectRejected(Verify(*MintJwt(*stranger, Claims())), "bad signature");
}

TEST_F(JwtTest, AlgNoneIsRejected) {
  const std::string payload =
      R"({"iss":"rogatory-dev","sub":"X","aud":"rogatory","iat":1767225600,"exp":1767229200})";
  for (const char* header :
       {R"({"alg":"none"})", R"({"alg":"none","kid":"dev"})", R"({"alg":"None","kid":"dev"})"}) {
    const std::string token =
        absl::StrCat(Base64UrlEncode(header), ".", Base64UrlEncode(payload), ".");
    ExpectRejected(Verify(token), "alg must be HS256, RS256 or ES256");
  }
}

TEST_F(JwtTest, HmacTokenSignedWithTheRsaPublicKeyIsRejected) {
  // The classic algorithm confusion: HS256 keyed with the RS256 key's public PEM.
  auto confused = *SigningKey::Hmac("k1", rsa_->public_pem);
  const std::string token =
      Raw(R"({"alg":"HS256","kid":"k1"})",
          R"({"iss":"rogatory-dev","sub":"X","aud":"rogatory","iat":1767225600,"exp":1767229200})",
          *confused);
  ExpectRejected(Verify(token), "alg does not match");
}

TEST_F(JwtTest, AlgorithmOtherThanTheKeysIsRejected) {
  // ES256 header pointing at the RS256 key, signed with the EC key.
  const std::string token =
      Raw(R"({"alg":"ES256","kid":"k1"})",
          R"({"iss":"rogatory-dev","sub":"X","aud":"rogatory","iat":1767225600,"exp":1767229200})",
          *es_);
  ExpectRejected(Verify(token), "alg does not match");
}

TEST_F(JwtTest, UnknownKidIsRejected) {
  auto other = *SigningKey::Hmac("retired", kSecret);
  ExpectRejected(Verify(*MintJwt(*other, Claims())), "unknown kid");
}

TEST_F(JwtTest, TokenWithoutKidNeedsAOneKeySet) {
  const std::string payload =
      R"({"iss":"rogatory-dev","sub":"X","aud":"rogatory","iat":1767225600,"exp":1767229200})";
  const std::string token = Raw(R"({"alg":"HS256"})", payload, *hs_);
  ExpectRejected(Verify(token), "no kid");
  auto one = KeySet::Of({*VerificationKey::Hmac("dev", kSecret)});
  EXPECT_TRUE(VerifyJwt(token, *one, options_).ok());
}

TEST_F(JwtTest, MalformedTokensAreRejectedWithoutEchoingThem) {
  const std::string good = *MintJwt(*hs_, Claims());
  const std::string payload = good.substr(good.find('.') + 1, good.rfind('.') - good.find('.') - 1);
  ExpectRejected(Verify(""), "empty");
  ExpectRejected(Verify("abc.def"), "not a compact JWS");
  ExpectRejected(Verify(absl::StrCat(good, ".x")), "not a compact JWS");
  ExpectRejected(Verify(absl::StrCat("!!!.", payload, ".sig")), "header is not base64url");
  ExpectRejected(Verify(absl::StrCat(Base64UrlEncode("{not json"), ".", payload, ".sig")),
                 "header is not a JSON object");
  ExpectRejected(Verify(absl::StrCat(Base64UrlEncode("[1,2]"), ".", payload, ".sig")),
                 "header is not a JSON object");
  ExpectRejected(Verify(std::string(9000, 'a')), "longer than 8 KiB");
  // Signed garbage payloads.
  ExpectRejected(Verify(Raw(R"({"alg":"HS256","kid":"dev"})", "{oops", *hs_)),
                 "payload is not a JSON object");
  const std::string bad_b64 =
      absl::StrCat(Base64UrlEncode(R"({"alg":"HS256","kid":"dev"})"), ".*payload*");
  ExpectRejected(Verify(absl::StrCat(bad_b64, ".", Base64UrlEncode(*hs_->Sign(bad_b64)))),
                 "payload is not base64url");
  auto r = Verify(absl::StrCat(good.substr(0, good.rfind('.')), ".%%%"));
  ExpectRejected(r, "signature is not base64url");
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(payload)));
}

TEST_F(JwtTest, ClaimsOfTheWrongTypeAreRejected) {
  const std::string header = R"({"alg":"HS256","kid":"dev"})";
  const std::string base =
      R"("iss":"rogatory-dev","sub":"X","aud":"rogatory","iat":1767225600,"exp":1767229200)";
  ExpectRejected(Verify(Raw(header, absl::StrCat("{", base, R"(,"roles":"issuing"})"), *hs_)),
                 "claim roles must be an array of strings");
  ExpectRejected(Verify(Raw(header, absl::StrCat("{", base, R"(,"roles":[1]})"), *hs_)),
                 "claim roles must be an array of strings");
  ExpectRejected(Verify(Raw(header, absl::StrCat("{", base, R"(,"state":7})"), *hs_)),
                 "claim state must be a string");
  ExpectRejected(
      Verify(Raw(
          header,
          R"({"iss":"rogatory-dev","sub":"X","aud":["rogatory",3],"iat":1767225600,"exp":1767229200})",
          *hs_)),
      "claim aud");
  ExpectRejected(
      Verify(
          Raw(header, R"({"iss":"rogatory-dev","sub":"X","aud":"rogatory","exp":"soon"})", *hs_)),
      "claim exp must be a number");
  ExpectRejected(
      Verify(Raw(
          header,
          R"({"iss":"rogatory-dev","sub":["X"],"aud":"rogatory","iat":1767225600,"exp":1767229200})",
          *hs_)),
      "claim sub must be a string");
  ExpectRejected(
      Verify(Raw(header,
                 R"({"iss":"rogatory-dev","aud":"rogatory","iat":1767225600,"exp":1767229200})",
                 *hs_)),
      "no sub");
}

TEST_F(JwtTest, CriticalHeaderExtensionsAreRejected) {
  ExpectRejected(
      Verify(Raw(
          R"({"alg":"HS256","kid":"dev","crit":["b64"],"b64":false})",
          R"({"iss":"rogatory-dev","sub":"X","aud":"rogatory","iat":1767225600,"exp":1767229200})",
          *hs_)),
      "critical");
}

TEST_F(JwtTest, KeySetRefusesHmacKeysWhenAskedTo) {
  KeySet::LoadOptions production;
  production.refuse_hmac = true;
  auto set = KeySet::Parse(KeySetJson(), production);
  ASSERT_FALSE(set.ok());
  EXPECT_THAT(std::string(set.status().message()), HasSubstr("refused with env=production"));
}

TEST_F(JwtTest, KeySetRejectsBadEntriesNamingTheKey) {
  auto message = [](const std::string& json) {
    auto set = KeySet::Parse(json, {});
    return set.ok() ? std::string("ok") : std::string(set.status().message());
  };
  EXPECT_THAT(message(R"({"keys":[{"kid":"a","alg":"HS256","secret":"c2hvcnQ="}]})"),
              HasSubstr("at least 32 bytes"));
  EXPECT_THAT(message(R"({"keys":[{"kid":"a","alg":"HS256","secret":"@@@"}]})"),
              HasSubstr("base64"));
  EXPECT_THAT(message(R"({"keys":[{"kid":"a","alg":"none"}]})"), HasSubstr("\"alg\""));
  EXPECT_THAT(message(R"({"keys":[{"kid":"b","alg":"RS256","public_key_pem":"junk"}]})"),
              HasSubstr("key \"b\""));
  EXPECT_THAT(message(absl::StrCat(R"({"keys":[{"kid":"c","alg":"RS256","public_key_pem":)",
                                   testing::JsonQuote(ec_->public_pem), "}]}")),
              HasSubstr("RSA"));
  EXPECT_THAT(message(absl::StrCat(R"({"keys":[{"kid":"d","alg":"ES256","public_key_pem":)",
                                   testing::JsonQuote(rsa_->public_pem), "}]}")),
              HasSubstr("P-256"));
  std::string secret;
  absl::Base64Escape(kSecret, &secret);
  EXPECT_THAT(message(absl::StrCat(R"({"keys":[{"kid":"x","alg":"HS256","secret":")", secret,
                                   R"("},{"kid":"x","alg":"HS256","secret":")", secret, R"("}]})")),
              HasSubstr("appears twice"));
  EXPECT_THAT(message(R"({"keys":[]})"), HasSubstr("no key"));
  EXPECT_THAT(message("not json"), HasSubstr("JSON"));
}

TEST_F(JwtTest, SigningKeyFileHoldsExactlyOneKeyWithSigningMaterial) {
  auto es = ParseSigningKey(absl::StrCat(R"({"kid":"svc","alg":"ES256","private_key_pem":)",
                                         testing::JsonQuote(ec_->private_pem), "}"));
  ASSERT_TRUE(es.ok()) << es.status();
  EXPECT_EQ((*es)->kid(), "svc");
  // A key set with a public key only: nothing to sign with.
  auto none =
      ParseSigningKey(absl::StrCat(R"({"keys":[{"kid":"k1","alg":"RS256","public_key_pem":)",
                                   testing::JsonQuote(rsa_->public_pem), "}]}"));
  EXPECT_FALSE(none.ok());
  // A signing key's public half verifies what it signs.
  auto set = KeySet::Parse(absl::StrCat(R"({"keys":[{"kid":"svc","alg":"ES256","private_key_pem":)",
                                        testing::JsonQuote(ec_->private_pem), "}]}"),
                           {});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_TRUE(VerifyJwt(*MintJwt(**es, Claims()), **set, options_).ok());
}

}  // namespace
}  // namespace rogatory::common
