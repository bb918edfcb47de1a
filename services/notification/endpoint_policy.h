#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rogatory::notification {

// Server-side request forgery checks for webhook endpoints.
struct EndpointPolicy {
  bool allow_http = false;               // plain HTTP (development only)
  bool allow_private_addresses = false;  // loopback, link-local, private, CGNAT, unspecified
};

struct ParsedEndpoint {
  std::string scheme;  // "https" or "http"
  std::string host;    // without brackets
  int port = 0;
};

// Checks an endpoint URI's form: absolute http(s) URI with a host, no user
// info, no fragment; http only if allowed; a literal IP address must pass the
// address check. INVALID_ARGUMENT with the reason otherwise.
absl::StatusOr<ParsedEndpoint> CheckEndpointUri(absl::string_view uri,
                                                const EndpointPolicy &policy);

// Whether a numeric address (IPv4 or IPv6 text) is loopback, link-local,
// private (RFC 1918, fc00::/7), shared (100.64/10), unspecified, multicast or
// broadcast, including IPv4-mapped IPv6 forms. Non-numeric text is "not
// blocked" (false).
bool IsBlockedAddress(absl::string_view address);

// Resolves `host` and returns one address that the policy allows (to pin the
// connection to, so a DNS answer cannot change between check and connect).
// PERMISSION_DENIED if any resolved address is blocked; UNAVAILABLE if it does
// not resolve.
absl::StatusOr<std::string> ResolveAllowed(const ParsedEndpoint &endpoint,
                                           const EndpointPolicy &policy);

}  // namespace rogatory::notification
