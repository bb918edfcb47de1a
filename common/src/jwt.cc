#include "rogatory/common/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "rogatory/common/status.h"

namespace rogatory::common {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr size_t kMaxTokenBytes = 8192;
constexpr size_t kMinHmacSecretBytes = 32;
constexpr size_t kEs256SignatureBytes = 64;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Refuses encrypted private keys instead of prompting on the terminal.
int NoPassword(char*, int, int, void*) { return -1; }

std::string HmacSha256(absl::string_view secret, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), Bytes(data), data.size(), out,
       &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

// Checks that `key` suits `alg`: RSA of 2048 bits or more for RS256, EC P-256 for ES256.
absl::Status CheckKeyType(EVP_PKEY* key, JwtAlg alg) {
  if (alg == JwtAlg::kRs256) {
    if (!EVP_PKEY_is_a(key, "RSA")) return absl::InvalidArgumentError("RS256 needs an RSA key");
    if (EVP_PKEY_get_bits(key) < 2048) {
      return absl::InvalidArgumentError("RS256 needs an RSA key of at least 2048 bits");
    }
    return absl::OkStatus();
  }
  if (alg == JwtAlg::kEs256) {
    char group[64] = {0};
    size_t len = 0;
    if (!EVP_PKEY_is_a(key, "EC") ||
        EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1 ||
        (absl::string_view(group, len) != "prime256v1" &&
         absl::string_view(group, len) != "P-256")) {
      return absl::InvalidArgumentError("ES256 needs an EC key on curve P-256");
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("HS256 takes a secret, not a PEM key");
}

// Reads a public key, or the public half of a private key, from PEM.
absl::StatusOr<PkeyPtr> ReadPem(absl::string_view pem, bool want_private) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return absl::InternalError("out of memory");
  PkeyPtr key;
  if (!want_private) key.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassword, nullptr));
  if (!key) {
    BIO_reset(bio.get());
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
  }
  ERR_clear_error();
  if (!key) {
    return absl::InvalidArgumentError(want_private ? "not an unencrypted PEM private key"
                                                   : "not a PEM public or private key");
  }
  return key;
}

// JSON helpers on google.protobuf.Struct, which parses JSON strictly.
absl::StatusOr<Struct> ParseJsonObject(absl::string_view json) {
  Struct out;
  if (!google::protobuf::util::JsonStringToMessage(std::string(json), &out).ok()) {
    return absl::InvalidArgumentError("not a JSON object");
  }
  return out;
}

const Value* Field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

absl::StatusOr<std::string> StringField(const Struct& s, const std::string& name, bool required) {
  const Value* v = Field(s, name);
  if (v == nullptr) {
    if (required) return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is missing"));
    return std::string();
  }
  if (v->kind_case() != Value::kStringValue) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" must be a string"));
  }
  return v->string_value();
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::BytesToHexString(absl::string_view(&c, 1)));
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

absl::Status Unauthenticated(absl::string_view what) {
  return absl::UnauthenticatedError(absl::StrCat("invalid bearer token: ", what));
}

// A NumericDate claim: seconds since the epoch, possibly fractional.
absl::StatusOr<std::optional<absl::Time>> TimeClaim(const Struct& payload,
                                                    const std::string& name) {
  const Value* v = Field(payload, name);
  if (v == nullptr) return std::optional<absl::Time>();
  if (v->kind_case() != Value::kNumberValue || !std::isfinite(v->number_value()) ||
      v->number_value() < 0 || v->number_value() > 1e11) {
    return Unauthenticated(absl::StrCat("claim ", name, " must be a number of seconds"));
  }
  return std::optional<absl::Time>(absl::UnixEpoch() + absl::Seconds(v->number_value()));
}

struct KeyEntry {
  std::string kid;
  JwtAlg alg;
  KeySubjects subjects = KeySubjects::kAny;
  bool declares_subjects = false;
  std::string secret;           // HS256
  std::string public_key_pem;   // RS256/ES256
  std::string private_key_pem;  // RS256/ES256, for signing (its public half verifies)
  bool jwk = false;             // a JSON Web Key (RFC 7517) rather than Rogatory's format
  bool skip = false;            // a JWK for encryption ("use": "enc"): signs nothing
};

// "subjects" of a key entry, either format.
absl::Status ParseSubjects(const Struct& key, KeyEntry& e) {
  auto subjects = StringField(key, "subjects", false);
  if (!subjects.ok()) return subjects.status();
  if (Field(key, "subjects") == nullptr) return absl::OkStatus();
  e.declares_subjects = true;
  if (*subjects == "authorities") {
    e.subjects = KeySubjects::kAuthorities;
  } else if (*subjects == "services") {
    e.subjects = KeySubjects::kServices;
  } else {
    return absl::InvalidArgumentError(
        "\"subjects\" must be \"authorities\" (callers' tokens) or \"services\" (the "
        "services' own tokens)");
  }
  return absl::OkStatus();
}

struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct BnDeleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;

// A base64url member of a JWK (trailing padding tolerated: some publishers add it).
absl::StatusOr<std::string> JwkBytes(const Struct& key, const std::string& name) {
  ASSIGN_OR_RETURN(std::string text, StringField(key, name, true));
  while (!text.empty() && text.back() == '=') text.pop_back();
  auto bytes = Base64UrlDecode(text);
  if (!bytes.ok() || bytes->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" must be base64url"));
  }
  return bytes;
}

// The PEM (SubjectPublicKeyInfo) of a public key built from OpenSSL parameters.
absl::StatusOr<std::string> PublicPemFromParams(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(bld));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a valid public key");
  }
  PkeyPtr key(raw);
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> check(
      EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a valid public key");
  }
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InternalError("cannot encode the public key");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// A JSON Web Key (RFC 7517, RFC 7518 section 6) as a key entry: EC P-256 (ES256), RSA
// (RS256) or oct (HS256). The public key becomes PEM, so the checks of Rogatory's own
// format (key type, size) apply unchanged.
absl::StatusOr<KeyEntry> ParseJwk(const Struct& key) {
  KeyEntry e;
  e.jwk = true;
  ASSIGN_OR_RETURN(e.kid, StringField(key, "kid", true));
  if (e.kid.empty() || e.kid.size() > 128) {
    return absl::InvalidArgumentError("\"kid\" must be 1 to 128 characters");
  }
  auto with_kid = [&](const absl::Status& s) {
    return absl::InvalidArgumentError(absl::StrCat("key \"", e.kid, "\": ", s.message()));
  };
  auto use = StringField(key, "use", false);
  if (!use.ok()) return with_kid(use.status());
  if (*use == "enc") {
    e.skip = true;
    return e;
  }
  if (!use->empty() && *use != "sig") {
    return with_kid(absl::InvalidArgumentError("\"use\" must be \"sig\" (or \"enc\", skipped)"));
  }
  auto kty = StringField(key, "kty", true);
  if (!kty.ok()) return with_kid(kty.status());
  auto alg = StringField(key, "alg", false);
  if (!alg.ok()) return with_kid(alg.status());
  if (absl::Status s = ParseSubjects(key, e); !s.ok()) return with_kid(s);

  const auto fail = [&](absl::string_view what) {
    return with_kid(absl::InvalidArgumentError(what));
  };
  if (*kty == "EC") {
    e.alg = JwtAlg::kEs256;
    auto crv = StringField(key, "crv", true);
    if (!crv.ok()) return with_kid(crv.status());
    if (*crv != "P-256") return fail("\"crv\" must be \"P-256\" (ES256)");
    auto x = JwkBytes(key, "x");
    if (!x.ok()) return with_kid(x.status());
    auto y = JwkBytes(key, "y");
    if (!y.ok()) return with_kid(y.status());
    if (x->size() != 32 || y->size() != 32) {
      return fail("\"x\" and \"y\" must be 32 bytes each (P-256)");
    }
    const std::string point = absl::StrCat("\x04", *x, *y);
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
            1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
      return absl::InternalError("out of memory");
    }
    auto pem = PublicPemFromParams("EC", bld.get());
    if (!pem.ok()) return with_kid(pem.status());
    e.public_key_pem = *std::move(pem);
  } else if (*kty == "RSA") {
    e.alg = JwtAlg::kRs256;
    auto n = JwkBytes(key, "n");
    if (!n.ok()) return with_kid(n.status());
    auto exponent = JwkBytes(key, "e");
    if (!exponent.ok()) return with_kid(exponent.status());
    BnPtr bn_n(BN_bin2bn(Bytes(*n), static_cast<int>(n->size()), nullptr));
    BnPtr bn_e(BN_bin2bn(Bytes(*exponent), static_cast<int>(exponent->size()), nullptr));
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
    if (!bn_n || !bn_e || !bld ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
      return absl::InternalError("out of memory");
    }
    auto pem = PublicPemFromParams("RSA", bld.get());
    if (!pem.ok()) return with_kid(pem.status());
    e.public_key_pem = *std::move(pem);
  } else if (*kty == "oct") {
    e.alg = JwtAlg::kHs256;
    auto k = JwkBytes(key, "k");
    if (!k.ok()) return with_kid(k.status());
    e.secret = *std::move(k);
  } else {
    return fail(absl::StrCat("\"kty\" \"", absl::CHexEscape(*kty),
                             "\" is not supported (EC P-256, RSA, or oct for development)"));
  }
  if (!alg->empty() && *alg != JwtAlgName(e.alg)) {
    return fail(absl::StrCat("\"alg\" must be ", JwtAlgName(e.alg), " for kty ", *kty,
                             " (HS256, RS256 and ES256 are supported)"));
  }
  return e;
}

absl::StatusOr<KeyEntry> ParseKeyEntry(const Struct& key) {
  if (Field(key, "kty") != nullptr) return ParseJwk(key);
  KeyEntry e;
  ASSIGN_OR_RETURN(e.kid, StringField(key, "kid", true));
  if (e.kid.empty() || e.kid.size() > 128) {
    return absl::InvalidArgumentError("\"kid\" must be 1 to 128 characters");
  }
  ASSIGN_OR_RETURN(std::string alg, StringField(key, "alg", true));
  auto parsed = ParseJwtAlg(alg);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("key \"", e.kid, "\": \"alg\" must be HS256, RS256 or ES256"));
  }
  e.alg = *parsed;
  auto with_kid = [&](const absl::Status& s) {
    return absl::InvalidArgumentError(absl::StrCat("key \"", e.kid, "\": ", s.message()));
  };
  if (absl::Status s = ParseSubjects(key, e); !s.ok()) return with_kid(s);
  if (e.alg == JwtAlg::kHs256) {
    auto secret = StringField(key, "secret", true);
    if (!secret.ok()) return with_kid(secret.status());
    if (!absl::Base64Unescape(*secret, &e.secret)) {
      return with_kid(absl::InvalidArgumentError("\"secret\" must be base64"));
    }
  } else {
    auto pub = StringField(key, "public_key_pem", false);
    auto priv = StringField(key, "private_key_pem", false);
    if (!pub.ok()) return with_kid(pub.status());
    if (!priv.ok()) return with_kid(priv.status());
    e.public_key_pem = *pub;
    e.private_key_pem = *priv;
    if (e.public_key_pem.empty() && e.private_key_pem.empty()) {
      return with_kid(
          absl::InvalidArgumentError("needs \"public_key_pem\" (or \"private_key_pem\")"));
    }
  }
  return e;
}

// The key objects of a key file: {"keys":[...]} or one key object.
absl::StatusOr<std::vector<KeyEntry>> ParseKeyEntries(absl::string_view json) {
  ASSIGN_OR_RETURN(Struct root, ParseJsonObject(json));
  std::vector<const Struct*> objects;
  if (const Value* keys = Field(root, "keys")) {
    if (keys->kind_case() != Value::kListValue) {
      return absl::InvalidArgumentError("\"keys\" must be an array");
    }
    for (const Value& k : keys->list_value().values()) {
      if (k.kind_case() != Value::kStructValue) {
        return absl::InvalidArgumentError("every entry of \"keys\" must be an object");
      }
      objects.push_back(&k.struct_value());
    }
  } else {
    objects.push_back(&root);
  }
  std::vector<KeyEntry> out;
  for (const Struct* o : objects) {
    ASSIGN_OR_RETURN(KeyEntry e, ParseKeyEntry(*o));
    if (e.skip) continue;
    for (const KeyEntry& before : out) {
      if (before.kid == e.kid) {
        return absl::InvalidArgumentError(absl::StrCat("kid \"", e.kid, "\" appears twice"));
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

// ---- base64url -----------------------------------------------------------------------

std::string Base64UrlEncode(absl::string_view data) {
  std::string out;
  absl::WebSafeBase64Escape(data, &out);  // no padding
  return out;
}

absl::StatusOr<std::string> Base64UrlDecode(absl::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  if (text.size() % 4 == 1) return absl::InvalidArgumentError("bad base64url length");
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = value(c);
    if (v < 0) return absl::InvalidArgumentError("not base64url");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return absl::InvalidArgumentError("base64url has stray bits");
  }
  return out;
}

// ---- algorithms ----------------------------------------------------------------------

absl::string_view JwtAlgName(JwtAlg alg) {
  switch (alg) {
    case JwtAlg::kHs256:
      return "HS256";
    case JwtAlg::kRs256:
      return "RS256";
    case JwtAlg::kEs256:
      return "ES256";
  }
  return "?";
}

absl::string_view KeySubjectsName(KeySubjects subjects) {
  switch (subjects) {
    case KeySubjects::kAny:
      return "any";
    case KeySubjects::kAuthorities:
      return "authorities";
    case KeySubjects::kServices:
      return "services";
  }
  return "?";
}

absl::StatusOr<JwtAlg> ParseJwtAlg(absl::string_view name) {
  if (name == "HS256") return JwtAlg::kHs256;
  if (name == "RS256") return JwtAlg::kRs256;
  if (name == "ES256") return JwtAlg::kEs256;
  return absl::InvalidArgumentError("unsupported algorithm");
}

// ---- verification keys ---------------------------------------------------------------

struct VerificationKey::Impl {
  std::string secret;  // HS256
  PkeyPtr pkey;        // RS256, ES256
};

VerificationKey::VerificationKey(std::string kid, JwtAlg alg, KeySubjects subjects,
                                 std::unique_ptr<Impl> impl)
    : kid_(std::move(kid)), alg_(alg), subjects_(subjects), impl_(std::move(impl)) {}
VerificationKey::~VerificationKey() = default;

absl::StatusOr<std::shared_ptr<const VerificationKey>> VerificationKey::Hmac(std::string kid,
                                                                             std::string secret,
                                                                             KeySubjects subjects) {
  if (secret.size() < kMinHmacSecretBytes) {
    return absl::InvalidArgumentError("an HS256 secret needs at least 32 bytes");
  }
  auto impl = std::make_unique<Impl>();
  impl->secret = std::move(secret);
  return std::shared_ptr<const VerificationKey>(
      new VerificationKey(std::move(kid), JwtAlg::kHs256, subjects, std::move(impl)));
}

absl::StatusOr<std::shared_ptr<const VerificationKey>> VerificationKey::FromPem(
    std::string kid, JwtAlg alg, absl::string_view pem, KeySubjects subjects) {
  ASSIGN_OR_RETURN(PkeyPtr key, ReadPem(pem, false));
  RETURN_IF_ERROR(CheckKeyType(key.get(), alg));
  auto impl = std::make_unique<Impl>();
  impl->pkey = std::move(key);
  return std::shared_ptr<const VerificationKey>(
      new VerificationKey(std::move(kid), alg, subjects, std::move(impl)));
}

bool VerificationKey::Verify(absl::string_view signing_input, absl::string_view signature) const {
  if (alg_ == JwtAlg::kHs256) {
    const std::string expected = HmacSha256(impl_->secret, signing_input);
    return signature.size() == expected.size() &&
           CRYPTO_memcmp(expected.data(), signature.data(), expected.size()) == 0;
  }
  std::string der;
  absl::string_view sig = signature;
  if (alg_ == JwtAlg::kEs256) {
    // JWS carries r||s (32 bytes each); OpenSSL verifies DER.
    if (signature.size() != kEs256SignatureBytes) return false;
    std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> ecdsa(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(Bytes(signature), 32, nullptr);
    BIGNUM* s = BN_bin2bn(Bytes(signature) + 32, 32, nullptr);
    if (!ecdsa || r == nullptr || s == nullptr || ECDSA_SIG_set0(ecdsa.get(), r, s) != 1) {
      BN_free(r);
      BN_free(s);
      return false;
    }
    unsigned char* out = nullptr;
    const int len = i2d_ECDSA_SIG(ecdsa.get(), &out);
    if (len <= 0) return false;
    der.assign(reinterpret_cast<char*>(out), static_cast<size_t>(len));
    OPENSSL_free(out);
    sig = der;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  const bool ok =
      ctx &&
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->pkey.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), Bytes(sig), sig.size(), Bytes(signing_input),
                       signing_input.size()) == 1;
  ERR_clear_error();
  return ok;
}

// ---- signing keys --------------------------------------------------------------------

struct SigningKey::Impl {
  std::string secret;
  PkeyPtr pkey;
};

SigningKey::SigningKey(std::string kid, JwtAlg alg, KeySubjects subjects,
                       std::unique_ptr<Impl> impl)
    : kid_(std::move(kid)), alg_(alg), subjects_(subjects), impl_(std::move(impl)) {}
SigningKey::~SigningKey() = default;

absl::StatusOr<std::shared_ptr<const SigningKey>> SigningKey::Hmac(std::string kid,
                                                                   std::string secret,
                                                                   KeySubjects subjects) {
  if (secret.size() < kMinHmacSecretBytes) {
    return absl::InvalidArgumentError("an HS256 secret needs at least 32 bytes");
  }
  auto impl = std::make_unique<Impl>();
  impl->secret = std::move(secret);
  return std::shared_ptr<const SigningKey>(
      new SigningKey(std::move(kid), JwtAlg::kHs256, subjects, std::move(impl)));
}

absl::StatusOr<std::shared_ptr<const SigningKey>> SigningKey::FromPem(std::string kid, JwtAlg alg,
                                                                      absl::string_view pem,
                                                                      KeySubjects subjects) {
  ASSIGN_OR_RETURN(PkeyPtr key, ReadPem(pem, true));
  RETURN_IF_ERROR(CheckKeyType(key.get(), alg));
  auto impl = std::make_unique<Impl>();
  impl->pkey = std::move(key);
  return std::shared_ptr<const SigningKey>(
      new SigningKey(std::move(kid), alg, subjects, std::move(impl)));
}

absl::StatusOr<std::string> SigningKey::Sign(absl::string_view signing_input) const {
  if (alg_ == JwtAlg::kHs256) return HmacSha256(impl_->secret, signing_input);
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, Bytes(signing_input), signing_input.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("signing failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     Bytes(signing_input), signing_input.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("signing failed");
  }
  sig.resize(len);
  if (alg_ != JwtAlg::kEs256) return sig;
  // DER to the JWS r||s form.
  const unsigned char* p = Bytes(sig);
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> ecdsa(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
  if (!ecdsa) return absl::InternalError("signing failed");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(ecdsa.get(), &r, &s);
  std::string out(kEs256SignatureBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(r, bytes, 32) != 32 || BN_bn2binpad(s, bytes + 32, 32) != 32) {
    return absl::InternalError("signing failed");
  }
  return out;
}

// ---- key sets ------------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<const KeySet>> KeySet::Parse(absl::string_view json,
                                                            const LoadOptions& options) {
  auto entries = ParseKeyEntries(json);
  if (!entries.ok()) return entries.status();
  std::vector<std::shared_ptr<const VerificationKey>> keys;
  for (KeyEntry& e : *entries) {
    if (e.jwk && !e.declares_subjects && options.jwks_subjects != KeySubjects::kAny) {
      e.subjects = options.jwks_subjects;
      e.declares_subjects = true;
    }
    if (e.alg == JwtAlg::kHs256 && options.refuse_hmac) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key \"", e.kid, "\": HS256 (shared secret) keys are refused with env=production"));
    }
    if (options.require_subjects && !e.declares_subjects) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key \"", e.kid,
          "\": \"subjects\" is required with env=production: "
          "\"authorities\" (an identity provider's key, for callers' tokens) or \"services\" "
          "(the services' own key)",
          e.jwk ? "; for a JWKS used unmodified, set auth-jwks-subjects" : ""));
    }
    absl::StatusOr<std::shared_ptr<const VerificationKey>> key;
    if (e.alg == JwtAlg::kHs256) {
      key = VerificationKey::Hmac(e.kid, e.secret, e.subjects);
    } else {
      key = VerificationKey::FromPem(
          e.kid, e.alg, e.public_key_pem.empty() ? e.private_key_pem : e.public_key_pem,
          e.subjects);
    }
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", e.kid, "\": ", key.status().message()));
    }
    keys.push_back(*std::move(key));
  }
  if (keys.empty()) return absl::InvalidArgumentError("the key set holds no key");
  return Of(std::move(keys));
}

absl::StatusOr<std::shared_ptr<const KeySet>> KeySet::Load(const std::string& path,
                                                           const LoadOptions& options) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto set = Parse(text, options);
  if (!set.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", set.status().message()));
  }
  return set;
}

std::shared_ptr<const KeySet> KeySet::Of(std::vector<std::shared_ptr<const VerificationKey>> keys) {
  auto set = std::make_shared<KeySet>();
  set->keys_ = std::move(keys);
  return set;
}

const VerificationKey* KeySet::Find(absl::string_view kid) const {
  for (const auto& k : keys_) {
    if (k->kid() == kid) return k.get();
  }
  return nullptr;
}

absl::StatusOr<std::shared_ptr<const SigningKey>> ParseSigningKey(absl::string_view json,
                                                                  KeySubjects purpose) {
  ASSIGN_OR_RETURN(std::vector<KeyEntry> entries, ParseKeyEntries(json));
  const KeyEntry* chosen = nullptr;
  const std::string for_purpose =
      purpose == KeySubjects::kAny ? ""
                                   : absl::StrCat(" that may sign for ", KeySubjectsName(purpose));
  for (const KeyEntry& e : entries) {
    const bool can_sign = e.alg == JwtAlg::kHs256 || !e.private_key_pem.empty();
    if (!can_sign) continue;
    if (purpose != KeySubjects::kAny && e.subjects != KeySubjects::kAny && e.subjects != purpose) {
      continue;
    }
    if (chosen != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("more than one key with signing material", for_purpose));
    }
    chosen = &e;
  }
  if (chosen == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("no key with signing material (an HS256 \"secret\" or a "
                     "\"private_key_pem\")",
                     for_purpose));
  }
  absl::StatusOr<std::shared_ptr<const SigningKey>> key =
      chosen->alg == JwtAlg::kHs256
          ? SigningKey::Hmac(chosen->kid, chosen->secret, chosen->subjects)
          : SigningKey::FromPem(chosen->kid, chosen->alg, chosen->private_key_pem,
                                chosen->subjects);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("key \"", chosen->kid, "\": ", key.status().message()));
  }
  return key;
}

absl::StatusOr<std::shared_ptr<const SigningKey>> LoadSigningKey(const std::string& path,
                                                                 KeySubjects purpose) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto key = ParseSigningKey(text, purpose);
  if (!key.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", key.status().message()));
  }
  return key;
}

// ---- tokens --------------------------------------------------------------------------

absl::StatusOr<JwtClaims> VerifyJwt(absl::string_view token, const KeySet& keys,
                                    const VerifyOptions& options, const VerificationKey** signer) {
  if (token.empty()) return Unauthenticated("empty");
  if (token.size() > kMaxTokenBytes) return Unauthenticated("longer than 8 KiB");
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return Unauthenticated("not a compact JWS (header.payload.signature)");

  auto header_json = Base64UrlDecode(parts[0]);
  if (!header_json.ok()) return Unauthenticated("header is not base64url");
  auto header = ParseJsonObject(*header_json);
  if (!header.ok()) return Unauthenticated("header is not a JSON object");
  auto alg_name = StringField(*header, "alg", true);
  if (!alg_name.ok()) return Unauthenticated("header has no alg string");
  auto alg = ParseJwtAlg(*alg_name);
  if (!alg.ok()) return Unauthenticated("alg must be HS256, RS256 or ES256 (\"none\" is refused)");
  if (Field(*header, "crit") != nullptr)
    return Unauthenticated("critical header extensions are not supported");
  auto kid = StringField(*header, "kid", false);
  if (!kid.ok()) return Unauthenticated("kid must be a string");

  const VerificationKey* key = nullptr;
  if (!kid->empty()) {
    key = keys.Find(*kid);
    if (key == nullptr) return Unauthenticated("unknown kid");
  } else {
    key = keys.Only();
    if (key == nullptr) return Unauthenticated("no kid, and the key set has several keys");
  }
  if (key->alg() != *alg) return Unauthenticated("alg does not match the key's algorithm");

  auto signature = Base64UrlDecode(parts[2]);
  if (!signature.ok()) return Unauthenticated("signature is not base64url");
  const absl::string_view signing_input(
      parts[0].data(), static_cast<size_t>(parts[1].data() + parts[1].size() - parts[0].data()));
  if (!key->Verify(signing_input, *signature)) return Unauthenticated("bad signature");

  auto payload_json = Base64UrlDecode(parts[1]);
  if (!payload_json.ok()) return Unauthenticated("payload is not base64url");
  auto payload = ParseJsonObject(*payload_json);
  if (!payload.ok()) return Unauthenticated("payload is not a JSON object");

  JwtClaims claims;
  auto iss = StringField(*payload, "iss", false);
  if (!iss.ok()) return Unauthenticated("claim iss must be a string");
  claims.issuer = *iss;
  auto sub = StringField(*payload, "sub", false);
  if (!sub.ok()) return Unauthenticated("claim sub must be a string");
  claims.subject = *sub;
  if (const Value* aud = Field(*payload, "aud")) {
    if (aud->kind_case() == Value::kStringValue) {
      claims.audiences.push_back(aud->string_value());
    } else if (aud->kind_case() == Value::kListValue) {
      for (const Value& a : aud->list_value().values()) {
        if (a.kind_case() != Value::kStringValue) {
          return Unauthenticated("claim aud must be a string or an array of strings");
        }
        claims.audiences.push_back(a.string_value());
      }
    } else {
      return Unauthenticated("claim aud must be a string or an array of strings");
    }
  }
  ASSIGN_OR_RETURN(claims.expires, TimeClaim(*payload, "exp"));
  ASSIGN_OR_RETURN(claims.not_before, TimeClaim(*payload, "nbf"));
  ASSIGN_OR_RETURN(claims.issued_at, TimeClaim(*payload, "iat"));
  auto state = StringField(*payload, "state", false);
  if (!state.ok()) return Unauthenticated("claim state must be a string");
  claims.state = *state;
  if (const Value* roles = Field(*payload, "roles")) {
    if (roles->kind_case() != Value::kListValue) {
      return Unauthenticated("claim roles must be an array of strings");
    }
    for (const Value& r : roles->list_value().values()) {
      if (r.kind_case() != Value::kStringValue) {
        return Unauthenticated("claim roles must be an array of strings");
      }
      claims.roles.push_back(r.string_value());
    }
  }

  if (!claims.expires.has_value()) {
    if (options.require_expiry) return Unauthenticated("no exp claim");
  } else if (options.now >= *claims.expires + options.leeway) {
    return Unauthenticated("expired");
  }
  if (claims.not_before.has_value() && options.now + options.leeway < *claims.not_before) {
    return Unauthenticated("not yet valid (nbf)");
  }
  if (!claims.issued_at.has_value()) {
    if (options.require_issued_at) return Unauthenticated("no iat claim");
  } else if (*claims.issued_at > options.now + options.leeway) {
    return Unauthenticated("issued in the future (iat)");
  }
  if (claims.issuer != options.issuer) return Unauthenticated("wrong issuer");
  if (std::find(claims.audiences.begin(), claims.audiences.end(), options.audience) ==
      claims.audiences.end()) {
    return Unauthenticated("wrong audience");
  }
  if (claims.subject.empty()) return Unauthenticated("no sub claim");
  if (signer != nullptr) *signer = key;
  return claims;
}

absl::StatusOr<std::string> MintJwt(const SigningKey& key, const JwtClaims& claims) {
  const std::string header = absl::StrCat("{\"alg\":", JsonString(JwtAlgName(key.alg())),
                                          ",\"kid\":", JsonString(key.kid()), ",\"typ\":\"JWT\"}");
  std::vector<std::string> fields;
  auto seconds = [](absl::Time t) { return absl::StrCat(absl::ToUnixSeconds(t)); };
  if (!claims.issuer.empty()) fields.push_back(absl::StrCat("\"iss\":", JsonString(claims.issuer)));
  if (!claims.subject.empty())
    fields.push_back(absl::StrCat("\"sub\":", JsonString(claims.subject)));
  if (claims.audiences.size() == 1) {
    fields.push_back(absl::StrCat("\"aud\":", JsonString(claims.audiences[0])));
  } else if (!claims.audiences.empty()) {
    std::vector<std::string> auds;
    for (const auto& a : claims.audiences) auds.push_back(JsonString(a));
    fields.push_back(absl::StrCat("\"aud\":[", absl::StrJoin(auds, ","), "]"));
  }
  if (claims.issued_at) fields.push_back(absl::StrCat("\"iat\":", seconds(*claims.issued_at)));
  if (claims.not_before) fields.push_back(absl::StrCat("\"nbf\":", seconds(*claims.not_before)));
  if (claims.expires) fields.push_back(absl::StrCat("\"exp\":", seconds(*claims.expires)));
  if (!claims.state.empty()) fields.push_back(absl::StrCat("\"state\":", JsonString(claims.state)));
  std::vector<std::string> roles;
  for (const auto& r : claims.roles) roles.push_back(JsonString(r));
  fields.push_back(absl::StrCat("\"roles\":[", absl::StrJoin(roles, ","), "]"));
  const std::string payload = absl::StrCat("{", absl::StrJoin(fields, ","), "}");
  const std::string signing_input =
      absl::StrCat(Base64UrlEncode(header), ".", Base64UrlEncode(payload));
  ASSIGN_OR_RETURN(std::string signature, key.Sign(signing_input));
  return absl::StrCat(signing_input, ".", Base64UrlEncode(signature));
}

}  // namespace rogatory::common
