// Fuzzes the webhook endpoint URI check (the server-side request forgery guard of
// notification subscriptions): any text is accepted with a host and scheme, or is
// INVALID_ARGUMENT; the first byte picks the policy.
#include <cstddef>
#include <cstdint>
#include <string>

#include "endpoint_policy.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  rogatory::notification::EndpointPolicy policy;
  policy.allow_http = data[0] & 1;
  policy.allow_private_addresses = data[0] & 2;
  const std::string uri(reinterpret_cast<const char*>(data + 1), size - 1);
  auto parsed = rogatory::notification::CheckEndpointUri(uri, policy);
  rogatory::fuzz::CheckRejection(parsed.status(), false);
  if (parsed.ok()) {
    if (parsed->host.empty()) rogatory::fuzz::Fail("accepted without a host", absl::OkStatus());
    if (parsed->scheme != "https" && !(policy.allow_http && parsed->scheme == "http")) {
      rogatory::fuzz::Fail("accepted a scheme the policy refuses", absl::OkStatus());
    }
  }
  return 0;
}
