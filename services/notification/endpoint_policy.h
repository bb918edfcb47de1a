#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rogatory::notification {

// Server-side request forgery checks for webhook endpoints.
struct EndpointPolicy {
  explicit EndpointPolicy(bool allow_http = false, bool allow_private_addresses = false,
                          std::vector<int> allowed_ports = {443})
      : allow_http(allow_http),
        allow_private_addresses(allow_private_addresses),
        allowed_ports(std::move(allowed_ports)) {}

  bool allow_http;  // plain HTTP (development only)
  // Every address the IANA special-purpose registries mark as not globally reachable
  // (loopback, private, link-local, documentation, benchmarking, ...): development and
  // tests only.
  bool allow_private_addresses;
  // The ports an endpoint may name (a URI without a port names its scheme's default: 443,
  // or 80 for http). Setting webhook-allowed-ports.
  std::vector<int> allowed_ports;
};

struct ParsedEndpoint {
  std::string scheme;  // "https" or "http"
  std::string host;    // without brackets
  int port = 0;
};

// Checks an endpoint URI's form: absolute http(s) URI with a host, no user
// info, no fragment, no IPv6 zone; http only if allowed; a port the policy allows; a
// literal IP address must be global (see RefusedRange) and the host no "localhost" name
// unless private addresses are allowed. INVALID_ARGUMENT with the reason otherwise (the
// message starts "endpoint_uri").
absl::StatusOr<ParsedEndpoint> CheckEndpointUri(absl::string_view uri,
                                                const EndpointPolicy& policy);

// The special-purpose range a numeric address (IPv4 or IPv6 text) falls in, as
// "198.18.0.0/15 (benchmarking)", when that range is not globally reachable; nullopt for
// a global address and for text that is not a numeric address. Covers every non-global
// entry of the IANA IPv4 and IPv6 special-purpose address registries, multicast, IPv6
// outside global unicast (2000::/3), and IPv4 embedded in IPv6: IPv4-compatible,
// IPv4-mapped, IPv4-translated, local-use NAT64, 6to4 and Teredo are refused whatever
// they embed; the well-known NAT64 prefix 64:ff9b::/96 is judged by the IPv4 address it
// embeds. The ranges are a table in endpoint_policy.cc.
std::optional<std::string> RefusedRange(absl::string_view address);

// RefusedRange(address).has_value().
bool IsBlockedAddress(absl::string_view address);

// Whether `port` is allowed by the policy.
bool PortAllowed(const EndpointPolicy& policy, int port);

// Parses webhook-allowed-ports: comma-separated ports 1 to 65535, at least one.
absl::StatusOr<std::vector<int>> ParsePortList(absl::string_view text);

// Name resolution for webhook deliveries; injectable so tests map names to addresses
// without DNS. Implementations are thread-safe.
class HostResolver {
 public:
  virtual ~HostResolver() = default;
  // Every address `host` resolves to (numeric text, IPv4 or IPv6). UNAVAILABLE when it
  // does not resolve.
  virtual absl::StatusOr<std::vector<std::string>> Resolve(const std::string& host) = 0;
};

// getaddrinfo.
class SystemHostResolver final : public HostResolver {
 public:
  absl::StatusOr<std::vector<std::string>> Resolve(const std::string& host) override;
};

// Resolves `endpoint.host` and returns the address to pin the connection to (so a DNS
// answer cannot change between check and connect). PERMISSION_DENIED if the port is not
// allowed or any resolved address is refused (see RefusedRange) while private addresses
// are not allowed; UNAVAILABLE if it does not resolve.
absl::StatusOr<std::string> ResolveAllowed(const ParsedEndpoint& endpoint,
                                           const EndpointPolicy& policy, HostResolver& resolver);
// The same with the system resolver.
absl::StatusOr<std::string> ResolveAllowed(const ParsedEndpoint& endpoint,
                                           const EndpointPolicy& policy);

}  // namespace rogatory::notification
