#include "webhook_signer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace rogatory::notification {
namespace {
constexpr absl::string_view kPrefix = "whsec_";
}  // namespace

std::string NewWebhookSecret() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // OpenSSL's CSPRNG does not fail on a running Linux system; if it ever
    // does, refuse to hand out a weak secret.
    std::abort();
  }
  return absl::StrCat(kPrefix, absl::Base64Escape(absl::string_view(
                                   reinterpret_cast<const char*>(bytes), sizeof(bytes))));
}

absl::StatusOr<std::string> SignWebhook(absl::string_view secret, absl::string_view id,
                                        absl::string_view timestamp, absl::string_view body) {
  if (!absl::StartsWith(secret, kPrefix)) {
    return absl::InvalidArgumentError("webhook secret must start with whsec_");
  }
  std::string key;
  if (!absl::Base64Unescape(secret.substr(kPrefix.size()), &key) || key.empty()) {
    return absl::InvalidArgumentError("webhook secret is not base64");
  }
  const std::string message = absl::StrCat(id, ".", timestamp, ".", body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac,
           &mac_len) == nullptr) {
    return absl::InternalError("HMAC-SHA256 failed");
  }
  return absl::StrCat(
      "v1,", absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(mac), mac_len)));
}

absl::StatusOr<std::string> SignatureHeader(const std::vector<std::string>& secrets,
                                            absl::string_view id, absl::string_view timestamp,
                                            absl::string_view body) {
  std::vector<std::string> parts;
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    auto sig = SignWebhook(secret, id, timestamp, body);
    if (!sig.ok()) return sig.status();
    parts.push_back(*std::move(sig));
  }
  return absl::StrJoin(parts, " ");
}

bool VerifyWebhook(absl::string_view secret, absl::string_view id, absl::string_view timestamp,
                   absl::string_view body, absl::string_view header) {
  auto expected = SignWebhook(secret, id, timestamp, body);
  if (!expected.ok()) return false;
  for (absl::string_view part : absl::StrSplit(header, ' ', absl::SkipEmpty())) {
    if (part.size() == expected->size() &&
        CRYPTO_memcmp(part.data(), expected->data(), part.size()) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace rogatory::notification
