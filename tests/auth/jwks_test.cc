// JWKS key sets (issue 21, item 5): an identity provider's JSON Web Key Set (RFC 7517) is a
// key file beside Rogatory's own format, keys chosen by kid, bound to what they may sign
// like every other key (a "subjects" member, or auth-jwks-subjects for a document used
// unmodified), refused with a clear error when malformed, and reloaded like the own format
// (the previous set stays in use when the new file is bad).
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "auth_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rogatory/common/authentication.h"
#include "rogatory/common/jwt.h"
#include "rogatory/common/platform.h"
#include "rogatory/common/test_clock.h"
#include "rogatory/common/token_authenticator.h"
#include "test_keys.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;

// A generated key pair and its public JWK members ("kty" and the key material).
struct JwkPair {
  testing::PemPair pem;
  std::string members;  // "kty":...,"crv":...,"x":...,"y":... or "kty":"RSA","n":...,"e":...
};

std::string B64Url(absl::string_view bytes) {
  std::string out;
  absl::WebSafeBase64Escape(bytes, &out);
  return out;
}

std::string BigNumParam(EVP_PKEY* key, const char* name, int pad) {
  BIGNUM* bn = nullptr;
  EVP_PKEY_get_bn_param(key, name, &bn);
  const int size = pad > 0 ? pad : BN_num_bytes(bn);
  std::string out(static_cast<size_t>(size), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), size);
  BN_free(bn);
  return out;
}

// "EC" (P-256) or "RSA" (2048 bits).
JwkPair GenerateJwk(const std::string& type) {
  JwkPair out;
  out.pem = testing::GenerateKeyPair(type);
  BIO* bio =
      BIO_new_mem_buf(out.pem.public_pem.data(), static_cast<int>(out.pem.public_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (type == "EC") {
    out.members = absl::StrCat(R"("kty":"EC","crv":"P-256","x":")",
                               B64Url(BigNumParam(key, OSSL_PKEY_PARAM_EC_PUB_X, 32)), R"(","y":")",
                               B64Url(BigNumParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32)), R"(")");
  } else {
    out.members =
        absl::StrCat(R"("kty":"RSA","n":")", B64Url(BigNumParam(key, OSSL_PKEY_PARAM_RSA_N, 0)),
                     R"(","e":")", B64Url(BigNumParam(key, OSSL_PKEY_PARAM_RSA_E, 0)), R"(")");
  }
  EVP_PKEY_free(key);
  return out;
}

using testing::AuthorityClaims;
using testing::ServiceClaims;

class JwksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ec_ = new JwkPair(GenerateJwk("EC"));
    rsa_ = new JwkPair(GenerateJwk("RSA"));
  }
  static void TearDownTestSuite() {
    delete ec_;
    delete rsa_;
  }

  // An identity provider's JWKS: an EC and an RSA signing key, as published (no Rogatory
  // member), plus an encryption key a real provider lists beside them.
  static std::string IdpJwks() {
    return absl::StrCat(R"({"keys":[{)", ec_->members,
                        R"(,"kid":"ec-2026","alg":"ES256","use":"sig"},{)", rsa_->members,
                        R"(,"kid":"rsa-2026","alg":"RS256","use":"sig"},{)", rsa_->members,
                        R"(,"kid":"rsa-enc","alg":"RSA-OAEP","use":"enc"}]})");
  }

  static std::shared_ptr<const SigningKey> Signer(const JwkPair& pair, const std::string& kid,
                                                  JwtAlg alg) {
    return *SigningKey::FromPem(kid, alg, pair.pem.private_pem);
  }

  absl::StatusOr<Caller> Check(const KeySet::LoadOptions& options, const std::string& jwks,
                               const SigningKey& key, const JwtClaims& claims) {
    auto keys = KeySet::Parse(jwks, options);
    if (!keys.ok()) return keys.status();
    TokenAuthenticator authenticator(clock_, {}, *keys);
    return authenticator.AuthenticateToken(*MintJwt(key, claims));
  }

  static KeySet::LoadOptions Production(KeySubjects jwks_subjects) {
    KeySet::LoadOptions o;
    o.refuse_hmac = true;
    o.require_subjects = true;
    o.jwks_subjects = jwks_subjects;
    return o;
  }

  SimulatedClock clock_;
  static JwkPair* ec_;
  static JwkPair* rsa_;
};

JwkPair* JwksTest::ec_ = nullptr;
JwkPair* JwksTest::rsa_ = nullptr;

TEST_F(JwksTest, TwoKeysAreSelectedByKid) {
  const auto options = Production(KeySubjects::kAuthorities);
  auto keys = KeySet::Parse(IdpJwks(), options);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ((*keys)->size(), 2u);  // the encryption key is skipped
  ASSERT_NE((*keys)->Find("ec-2026"), nullptr);
  EXPECT_EQ((*keys)->Find("ec-2026")->alg(), JwtAlg::kEs256);
  EXPECT_EQ((*keys)->Find("rsa-2026")->alg(), JwtAlg::kRs256);
  EXPECT_EQ((*keys)->Find("rsa-2026")->subjects(), KeySubjects::kAuthorities);

  auto by_ec = Check(options, IdpJwks(), *Signer(*ec_, "ec-2026", JwtAlg::kEs256),
                     AuthorityClaims(clock_.Now()));
  ASSERT_TRUE(by_ec.ok()) << by_ec.status();
  EXPECT_EQ(by_ec->authority_id, "FR-TJ-PARIS-JI");
  auto by_rsa = Check(options, IdpJwks(), *Signer(*rsa_, "rsa-2026", JwtAlg::kRs256),
                      AuthorityClaims(clock_.Now()));
  ASSERT_TRUE(by_rsa.ok()) << by_rsa.status();
  // The EC key's signature under the RSA key's kid: the kid picks the key, which refuses it.
  auto swapped = Check(options, IdpJwks(), *Signer(*ec_, "rsa-2026", JwtAlg::kEs256),
                       AuthorityClaims(clock_.Now()));
  EXPECT_EQ(swapped.status().code(), absl::StatusCode::kUnauthenticated);
  // The RSA key minting under the EC key's kid with ES256's name cannot be built, and
  // with RS256 under "ec-2026" it is an algorithm substitution.
  auto substituted = Check(options, IdpJwks(), *Signer(*rsa_, "ec-2026", JwtAlg::kRs256),
                           AuthorityClaims(clock_.Now()));
  EXPECT_THAT(std::string(substituted.status().message()), HasSubstr("alg does not match"));
}

TEST_F(JwksTest, UnknownKidIsRefused) {
  auto caller = Check(Production(KeySubjects::kAuthorities), IdpJwks(),
                      *Signer(*ec_, "ec-2025", JwtAlg::kEs256), AuthorityClaims(clock_.Now()));
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(caller.status().message()), HasSubstr("unknown kid"));
}

TEST_F(JwksTest, KeyUsedOutsideItsBindingIsRefused) {
  // Bound by auth-jwks-subjects: the provider's key signs callers' tokens, never a service's.
  auto service = Check(Production(KeySubjects::kAuthorities), IdpJwks(),
                       *Signer(*ec_, "ec-2026", JwtAlg::kEs256), ServiceClaims(clock_.Now()));
  EXPECT_EQ(service.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(service.status().message()),
              HasSubstr("signed by a key for authorities"));

  // Bound by the Rogatory member "subjects", which wins over auth-jwks-subjects: a services
  // key in the same document signs service tokens and no caller's.
  const std::string mixed = absl::StrCat(R"({"keys":[{)", ec_->members,
                                         R"(,"kid":"svc","alg":"ES256","subjects":"services"},{)",
                                         rsa_->members, R"(,"kid":"idp","alg":"RS256"}]})");
  const auto options = Production(KeySubjects::kAuthorities);
  EXPECT_TRUE(
      Check(options, mixed, *Signer(*ec_, "svc", JwtAlg::kEs256), ServiceClaims(clock_.Now()))
          .ok());
  auto caller =
      Check(options, mixed, *Signer(*ec_, "svc", JwtAlg::kEs256), AuthorityClaims(clock_.Now()));
  EXPECT_THAT(std::string(caller.status().message()), HasSubstr("signed by the services' key"));
  EXPECT_TRUE(
      Check(options, mixed, *Signer(*rsa_, "idp", JwtAlg::kRs256), AuthorityClaims(clock_.Now()))
          .ok());
}

TEST_F(JwksTest, ProductionNeedsABindingForEveryKey) {
  auto unbound = KeySet::Parse(IdpJwks(), Production(KeySubjects::kAny));
  ASSERT_FALSE(unbound.ok());
  EXPECT_THAT(std::string(unbound.status().message()), HasSubstr("auth-jwks-subjects"));
  EXPECT_TRUE(KeySet::Parse(IdpJwks(), Production(KeySubjects::kAuthorities)).ok());
  // An oct (shared secret) JWK is development-only, like an HS256 key of the own format.
  const std::string oct =
      absl::StrCat(R"({"keys":[{"kty":"oct","kid":"dev","alg":"HS256","k":")",
                   B64Url("a-development-secret-of-32-bytes-or-more"), R"("}]})");
  EXPECT_TRUE(KeySet::Parse(oct, {}).ok());
  EXPECT_THAT(
      std::string(KeySet::Parse(oct, Production(KeySubjects::kAuthorities)).status().message()),
      HasSubstr("HS256"));
}

TEST_F(JwksTest, OwnFormatAndJwkMixInOneFile) {
  const std::string mixed =
      absl::StrCat(R"({"keys":[{"kid":"svc","alg":"ES256","subjects":"services","public_key_pem":)",
                   testing::JsonQuote(ec_->pem.public_pem), "},{", rsa_->members,
                   R"(,"kid":"idp","subjects":"authorities"}]})");
  auto keys = KeySet::Parse(mixed, Production(KeySubjects::kAny));
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ((*keys)->Find("idp")->alg(), JwtAlg::kRs256);  // implied by kty without "alg"
  EXPECT_EQ((*keys)->Find("svc")->subjects(), KeySubjects::kServices);
}

TEST_F(JwksTest, MalformedJwksGivesAClearErrorAtLoad) {
  struct Case {
    std::string key;  // the members of the one JWK
    std::string error;
  };
  const std::string ec_x = ec_->members.substr(0, ec_->members.find(R"(,"y")"));
  std::string bad_point = ec_->members;
  bad_point[bad_point.size() - 3] = bad_point[bad_point.size() - 3] == 'A' ? 'B' : 'A';
  const JwkPair small_rsa = [] {
    JwkPair p;
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024});
    p.members = absl::StrCat(R"("kty":"RSA","n":")",
                             B64Url(BigNumParam(key, OSSL_PKEY_PARAM_RSA_N, 0)), R"(","e":"AQAB")");
    EVP_PKEY_free(key);
    return p;
  }();
  const std::vector<Case> cases = {
      {R"("kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k")",
       R"(key "k": "kty" "OKP" is not supported)"},
      {absl::StrCat(ec_->members, R"(,"alg":"ES256")"), R"("kid" is missing)"},
      {absl::StrCat(ec_x, R"(,"kid":"k")"), R"(key "k": "y" is missing)"},
      {absl::StrCat(R"("kty":"EC","crv":"P-384","x":"AA","y":"AA","kid":"k")"),
       R"(key "k": "crv" must be "P-256")"},
      {absl::StrCat(ec_->members, R"(,"kid":"k","alg":"RS256")"),
       R"(key "k": "alg" must be ES256)"},
      {absl::StrCat(bad_point, R"(,"kid":"k")"), R"(key "k": not a valid public key)"},
      {absl::StrCat(R"("kty":"RSA","n":"not base64!","e":"AQAB","kid":"k")"),
       R"(key "k": "n" must be base64url)"},
      {absl::StrCat(small_rsa.members, R"(,"kid":"k")"), "at least 2048 bits"},
      {absl::StrCat(ec_->members, R"(,"kid":"k","use":"wrap")"), R"(key "k": "use" must be "sig")"},
  };
  for (const Case& c : cases) {
    auto keys = KeySet::Parse(absl::StrCat(R"({"keys":[{)", c.key, "}]}"), {});
    ASSERT_FALSE(keys.ok()) << c.key;
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(keys.status().message()), HasSubstr(c.error)) << c.key;
  }
  // A JWKS holding only encryption keys verifies nothing.
  EXPECT_THAT(std::string(KeySet::Parse(absl::StrCat(R"({"keys":[{)", rsa_->members,
                                                     R"(,"kid":"e","use":"enc"}]})"),
                                        {})
                              .status()
                              .message()),
              HasSubstr("holds no key"));
}

// ---- as a service's auth-keys file ---------------------------------------------------

class JwksFileTest : public JwksTest {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(::testing::TempDir(), "/jwks-", name);
    std::ofstream(path) << text;
    return path;
  }
  int Parse(std::vector<std::string> flags) {
    testing::SettingsParse parsed = testing::ParseTestServiceSettings(std::move(flags));
    stderr_ = std::move(parsed.stderr_text);
    return parsed.code;
  }
  std::string stderr_;
};

TEST_F(JwksFileTest, ServiceStartsWithAJwksAndRefusesAMalformedOne) {
  const std::string jwks = Write("idp.json", IdpJwks());
  EXPECT_EQ(Parse({"--env=production", "--auth-keys=" + jwks, "--auth-jwks-subjects=authorities"}),
            -1);
  EXPECT_EQ(Parse({"--env=production", "--auth-keys=" + jwks}), 2);
  EXPECT_THAT(stderr_, HasSubstr("auth-jwks-subjects"));
  const std::string broken =
      Write("broken.json", absl::StrCat(R"({"keys":[{"kty":"EC","crv":"P-256","kid":"k"}]})"));
  EXPECT_EQ(Parse({"--auth-keys=" + broken}), 2);
  EXPECT_THAT(stderr_, HasSubstr(R"(setting 'auth-keys')"));
  EXPECT_THAT(stderr_, HasSubstr(R"(key \"k\": \"x\" is missing)"));
}

TEST_F(JwksFileTest, ReloadSwapsTheJwksAndKeepsTheLastGoodOne) {
  AuthSettings auth;
  auth.jwks_subjects = "authorities";
  auth.keys_file = Write("reload.json", IdpJwks());
  ReloadHooks hooks;
  auto made = MakeAuthentication(auth, true, clock_, "intake", hooks);
  ASSERT_TRUE(made.ok()) << made.status();
  auto* verifier = dynamic_cast<TokenAuthenticator*>((*made)->authenticator.get());
  ASSERT_NE(verifier, nullptr);
  const std::string ec_token =
      *MintJwt(*Signer(*ec_, "ec-2026", JwtAlg::kEs256), AuthorityClaims(clock_.Now()));
  ASSERT_TRUE(verifier->AuthenticateToken(ec_token).ok());

  // A malformed document: refused, the last good set stays in use.
  Write("reload.json", R"({"keys":[{"kty":"EC","kid":"ec-2027"}]})");
  hooks.RunAll();
  EXPECT_TRUE(verifier->AuthenticateToken(ec_token).ok());

  // The provider rotated: only the RSA key under a new kid remains.
  Write("reload.json",
        absl::StrCat(R"({"keys":[{)", rsa_->members, R"(,"kid":"rsa-2027","alg":"RS256"}]})"));
  hooks.RunAll();
  EXPECT_THAT(std::string(verifier->AuthenticateToken(ec_token).status().message()),
              HasSubstr("unknown kid"));
  EXPECT_TRUE(verifier
                  ->AuthenticateToken(*MintJwt(*Signer(*rsa_, "rsa-2027", JwtAlg::kRs256),
                                               AuthorityClaims(clock_.Now())))
                  .ok());
}

}  // namespace
}  // namespace rogatory::common
