#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rogatory::notification {

// Standard Webhooks signatures (https://www.standardwebhooks.com/): a secret is
// "whsec_<base64 of 24..64 random bytes>"; the signature of a delivery is
// "v1,<base64 HMAC-SHA256 over '<webhook-id>.<webhook-timestamp>.<body>'>",
// keyed with the secret's decoded bytes. Several signatures (during a secret
// rotation) are joined by spaces in one webhook-signature header.

// A new random secret (32 bytes, OpenSSL RAND_bytes).
std::string NewWebhookSecret();

// "v1,<base64 signature>" or INVALID_ARGUMENT if the secret is malformed.
absl::StatusOr<std::string> SignWebhook(absl::string_view secret, absl::string_view id,
                                        absl::string_view timestamp, absl::string_view body);

// The webhook-signature header value for several secrets (empty secrets
// skipped).
absl::StatusOr<std::string> SignatureHeader(const std::vector<std::string>& secrets,
                                            absl::string_view id, absl::string_view timestamp,
                                            absl::string_view body);

// Whether any signature in `header` was made with `secret` (constant-time
// comparison).
bool VerifyWebhook(absl::string_view secret, absl::string_view id, absl::string_view timestamp,
                   absl::string_view body, absl::string_view header);

}  // namespace rogatory::notification
