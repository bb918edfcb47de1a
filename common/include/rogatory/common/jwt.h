#pragma once

// JSON Web Tokens (RFC 7519) signed with HS256, RS256 or ES256 (RFC 7518), on OpenSSL 3:
// base64url, key sets (Rogatory's format or a JWKS, RFC 7517), verification and minting. Only the
// compact JWS form; no encryption.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace rogatory::common {

// Base64url without padding (RFC 4648 section 5), as JWTs use it.
std::string Base64UrlEncode(absl::string_view data);
// Strict: only the base64url alphabet, no padding, no whitespace, unused bits zero.
// INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> Base64UrlDecode(absl::string_view text);

enum class JwtAlg { kHs256, kRs256, kEs256 };
absl::string_view JwtAlgName(JwtAlg alg);
// "HS256", "RS256", "ES256"; anything else ("none" included) is INVALID_ARGUMENT.
absl::StatusOr<JwtAlg> ParseJwtAlg(absl::string_view name);

// What a key may sign, as its key set entry declares with "subjects":
//   "authorities": callers' tokens (authorities, translators, auditors, operators): an
//                  identity provider's key;
//   "services":    the services' own tokens (sub rogatory-<service>, role service).
// kAny is a key that declares nothing: accepted in development only (KeySet::LoadOptions::
// require_subjects refuses it), where it signs both kinds as before keys were bound.
enum class KeySubjects { kAny, kAuthorities, kServices };
// "any", "authorities", "services".
absl::string_view KeySubjectsName(KeySubjects subjects);

// One key a token may be checked with. Immutable once loaded; thread-safe.
class VerificationKey {
 public:
  // HS256: the shared secret (at least 32 bytes).
  static absl::StatusOr<std::shared_ptr<const VerificationKey>> Hmac(
      std::string kid, std::string secret, KeySubjects subjects = KeySubjects::kAny);
  // RS256 (RSA of at least 2048 bits) or ES256 (EC P-256): a public key, or a private key
  // whose public half is used, in PEM.
  static absl::StatusOr<std::shared_ptr<const VerificationKey>> FromPem(
      std::string kid, JwtAlg alg, absl::string_view pem, KeySubjects subjects = KeySubjects::kAny);
  ~VerificationKey();

  const std::string& kid() const { return kid_; }
  JwtAlg alg() const { return alg_; }
  KeySubjects subjects() const { return subjects_; }
  // Whether `signature` is this key's signature of `signing_input` under its algorithm.
  bool Verify(absl::string_view signing_input, absl::string_view signature) const;

 private:
  struct Impl;
  VerificationKey(std::string kid, JwtAlg alg, KeySubjects subjects, std::unique_ptr<Impl> impl);
  std::string kid_;
  JwtAlg alg_;
  KeySubjects subjects_;
  std::unique_ptr<Impl> impl_;
};

// A key that mints tokens (the services' own tokens, development tokens in tests).
class SigningKey {
 public:
  static absl::StatusOr<std::shared_ptr<const SigningKey>> Hmac(
      std::string kid, std::string secret, KeySubjects subjects = KeySubjects::kAny);
  // RS256 or ES256 private key in PEM.
  static absl::StatusOr<std::shared_ptr<const SigningKey>> FromPem(
      std::string kid, JwtAlg alg, absl::string_view pem, KeySubjects subjects = KeySubjects::kAny);
  ~SigningKey();

  const std::string& kid() const { return kid_; }
  JwtAlg alg() const { return alg_; }
  KeySubjects subjects() const { return subjects_; }
  // The JWS signature of `signing_input` (for ES256 the 64-byte r||s form).
  absl::StatusOr<std::string> Sign(absl::string_view signing_input) const;

 private:
  struct Impl;
  SigningKey(std::string kid, JwtAlg alg, KeySubjects subjects, std::unique_ptr<Impl> impl);
  std::string kid_;
  JwtAlg alg_;
  KeySubjects subjects_;
  std::unique_ptr<Impl> impl_;
};

// The keys tokens may be signed with, by kid. Loaded from JSON:
//   {"keys":[{"kid":"dev","alg":"HS256","subjects":"authorities","secret":"<base64>"},
//            {"kid":"k1","alg":"RS256","subjects":"authorities",
//             "public_key_pem":"-----BEGIN PUBLIC KEY-----..."},
//            {"kid":"e1","alg":"ES256","subjects":"services","public_key_pem":"..."}]}
// A key may carry "private_key_pem" instead of "public_key_pem" (its public half is used).
// "subjects" ("authorities" or "services", see KeySubjects) says what the key may sign.
//
// An entry of "keys" may instead be a JSON Web Key (RFC 7517; it has "kty"), so an identity
// provider's JWKS document is a key set as it is published:
//   {"kty":"EC","crv":"P-256","x":"<b64url>","y":"<b64url>","kid":"k1","alg":"ES256","use":"sig"}
//   {"kty":"RSA","n":"<b64url>","e":"<b64url>","kid":"k2","alg":"RS256"}
//   {"kty":"oct","k":"<b64url>","kid":"dev","alg":"HS256"}          (development only)
// "kid" is required (tokens pick their key by it); "alg", when present, must be the one the
// key type implies (ES256 for EC P-256, RS256 for RSA, HS256 for oct); keys with "use":
// "enc" are skipped (they sign nothing); private members ("d", ...) are ignored, only the
// public key is used. A JWK says what it may sign with the Rogatory member "subjects" (as
// above), or, for a document used unmodified, LoadOptions::jwks_subjects binds every JWK
// that carries none (setting auth-jwks-subjects).
// Immutable; shared between threads through shared_ptr<const KeySet>.
class KeySet {
 public:
  struct LoadOptions {
    // Refuse HS256 keys (production: a shared secret lets every holder mint any caller).
    bool refuse_hmac = false;
    // Refuse keys without "subjects" (production: every key says what it may sign).
    bool require_subjects = false;
    // What the JSON Web Keys that carry no "subjects" member may sign (kAny: nothing
    // declared, refused with require_subjects). Keys in Rogatory's own format always
    // declare their own.
    KeySubjects jwks_subjects = KeySubjects::kAny;
  };
  static absl::StatusOr<std::shared_ptr<const KeySet>> Parse(absl::string_view json,
                                                             const LoadOptions& options);
  static absl::StatusOr<std::shared_ptr<const KeySet>> Load(const std::string& path,
                                                            const LoadOptions& options);
  static std::shared_ptr<const KeySet> Of(std::vector<std::shared_ptr<const VerificationKey>> keys);

  // Null when no key has this kid.
  const VerificationKey* Find(absl::string_view kid) const;
  // The key of a one-key set (for tokens without kid); null when there are several.
  const VerificationKey* Only() const { return keys_.size() == 1 ? keys_[0].get() : nullptr; }
  size_t size() const { return keys_.size(); }

 private:
  std::vector<std::shared_ptr<const VerificationKey>> keys_;
};

// Loads the one signing key for `purpose` of a key file in the KeySet format: either a key
// object {"kid","alg","subjects","secret"|"private_key_pem"} or {"keys":[...]} holding
// exactly one key with signing material (an HS256 secret or a private key) that may sign
// for `purpose` (a key that declares no subjects may sign for any; kAny takes any key).
// So one development key set can hold an authorities key and a services key, and each
// signer picks its own.
absl::StatusOr<std::shared_ptr<const SigningKey>> LoadSigningKey(
    const std::string& path, KeySubjects purpose = KeySubjects::kAny);
absl::StatusOr<std::shared_ptr<const SigningKey>> ParseSigningKey(
    absl::string_view json, KeySubjects purpose = KeySubjects::kAny);

// The registered and Rogatory claims of a token.
struct JwtClaims {
  std::string issuer;                    // iss
  std::string subject;                   // sub: the authority id or rogatory-<service>
  std::vector<std::string> audiences;    // aud (a string or an array)
  std::optional<absl::Time> expires;     // exp
  std::optional<absl::Time> not_before;  // nbf
  std::optional<absl::Time> issued_at;   // iat
  std::string state;                     // ISO 3166-1 alpha-2
  std::vector<std::string> roles;
};

struct VerifyOptions {
  std::string issuer;                         // iss must equal it
  std::string audience;                       // aud must be or contain it
  absl::Time now;                             // from the injected clock
  absl::Duration leeway = absl::Seconds(30);  // clock skew tolerated on exp, nbf and iat
  bool require_expiry = true;
  // iat must be present and not later than now + leeway.
  bool require_issued_at = true;
};

// Verifies a compact JWS and returns its claims. UNAUTHENTICATED naming the check that
// failed (malformed, unknown kid, algorithm, signature, expired, not yet valid, issued in
// the future, issuer, audience, claim types); the message never contains the token or its
// claims' values. The key is chosen by kid (or the only key when the header has none) and
// the header's alg must be that key's: "none" and algorithm substitution are refused.
// `signer`, when given, receives the key that verified the token (owned by `keys`), so the
// caller can check what that key may sign.
absl::StatusOr<JwtClaims> VerifyJwt(absl::string_view token, const KeySet& keys,
                                    const VerifyOptions& options,
                                    const VerificationKey** signer = nullptr);

// Mints a compact JWS of `claims` (those that are set) with `key`, kid in the header.
absl::StatusOr<std::string> MintJwt(const SigningKey& key, const JwtClaims& claims);

}  // namespace rogatory::common
