// Fuzzes token verification and key set loading, the first things an unauthenticated
// caller's bytes reach. The first byte picks the mode:
//   0: the rest is a compact token, verified against a fixed HS256 key set;
//   1: the rest is "<header JSON>\n<claims JSON>", signed with that key, so the fuzzer
//      gets past the signature into header and claim parsing;
//   2: the rest is a key set file (JSON).
// Contract: verification answers OK or UNAUTHENTICATED with a message, which never contains
// the signature of a signed token (mode 1: 43 random characters, so finding them in the
// message means it echoes the token); loading answers OK or INVALID_ARGUMENT with a message;
// no crash, no hang.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "openssl/evp.h"
#include "openssl/hmac.h"
#include "rogatory/common/jwt.h"

namespace {

using rogatory::common::Base64UrlEncode;
using rogatory::common::KeySet;
using rogatory::common::VerificationKey;
using rogatory::common::VerifyJwt;
using rogatory::common::VerifyOptions;

constexpr char kSecret[] = "fuzzing-secret-of-at-least-32-bytes-long";

[[noreturn]] void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "fuzz contract broken: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

const KeySet& Keys() {
  static const auto* keys = [] {
    auto key = VerificationKey::Hmac("fuzz", kSecret);
    if (!key.ok()) Fail("test key", key.status());
    return new std::shared_ptr<const KeySet>(KeySet::Of({*key}));
  }();
  return **keys;
}

std::string Sign(const std::string& input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret, sizeof(kSecret) - 1,
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return Base64UrlEncode(std::string(reinterpret_cast<const char*>(mac), len));
}

// `secret_part`: a part of the token that must never appear in the message (may be empty).
void CheckVerification(const std::string& token, const std::string& secret_part) {
  VerifyOptions options;
  options.issuer = "rogatory-dev";
  options.audience = "rogatory";
  options.now = absl::FromUnixSeconds(1'800'000'000);
  auto claims = VerifyJwt(token, Keys(), options);
  if (claims.ok()) return;
  if (claims.status().code() != absl::StatusCode::kUnauthenticated) {
    Fail("not UNAUTHENTICATED", claims.status());
  }
  if (claims.status().message().empty()) Fail("no message", claims.status());
  if (!secret_part.empty() &&
      claims.status().message().find(secret_part) != absl::string_view::npos) {
    Fail("the message echoes the token", claims.status());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0:
      CheckVerification(rest, "");
      break;
    case 1: {
      const size_t newline = rest.find('\n');
      if (newline == std::string::npos) return 0;
      const std::string input = absl::StrCat(Base64UrlEncode(rest.substr(0, newline)), ".",
                                             Base64UrlEncode(rest.substr(newline + 1)));
      const std::string signature = Sign(input);
      CheckVerification(absl::StrCat(input, ".", signature), signature);
      break;
    }
    default: {
      auto keys = KeySet::Parse(rest, KeySet::LoadOptions{});
      if (!keys.ok() && (keys.status().code() != absl::StatusCode::kInvalidArgument ||
                         keys.status().message().empty())) {
        Fail("a bad key set is not a clear INVALID_ARGUMENT", keys.status());
      }
      break;
    }
  }
  return 0;
}
