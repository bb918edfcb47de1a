#include "endpoint_policy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace rogatory::notification {
namespace {

// What a range of the table means for a webhook endpoint.
enum class Verdict {
  kRefuse,      // not globally reachable (or not to be trusted to be): refused
  kGlobal,      // globally reachable: allowed
  kEmbeddedV4,  // judged by the IPv4 address in its last 32 bits
};

struct Range {
  const char* prefix;  // "198.18.0.0/15"
  const char* name;    // "benchmarking"
  Verdict verdict;
};

// IPv4: the IANA IPv4 Special-Purpose Address Registry's entries that are not globally
// reachable (the whole of 192.0.0.0/24 although two /32s in it are global: no webhook
// lives there), the deprecated 6to4 relay anycast, multicast and the reserved 240/4.
// Anything else is global. First match wins.
constexpr Range kV4Ranges[] = {
    {"0.0.0.0/8", "this network", Verdict::kRefuse},
    {"10.0.0.0/8", "private use", Verdict::kRefuse},
    {"100.64.0.0/10", "shared address space", Verdict::kRefuse},
    {"127.0.0.0/8", "loopback", Verdict::kRefuse},
    {"169.254.0.0/16", "link-local", Verdict::kRefuse},
    {"172.16.0.0/12", "private use", Verdict::kRefuse},
    {"192.0.0.0/24", "IETF protocol assignments", Verdict::kRefuse},
    {"192.0.2.0/24", "documentation", Verdict::kRefuse},
    {"192.88.99.0/24", "6to4 relay anycast, deprecated", Verdict::kRefuse},
    {"192.168.0.0/16", "private use", Verdict::kRefuse},
    {"198.18.0.0/15", "benchmarking", Verdict::kRefuse},
    {"198.51.100.0/24", "documentation", Verdict::kRefuse},
    {"203.0.113.0/24", "documentation", Verdict::kRefuse},
    {"224.0.0.0/4", "multicast", Verdict::kRefuse},
    {"255.255.255.255/32", "limited broadcast", Verdict::kRefuse},
    {"240.0.0.0/4", "reserved", Verdict::kRefuse},
    {"0.0.0.0/0", "global", Verdict::kGlobal},
};

// IPv6: the IANA IPv6 Special-Purpose Address Registry's entries that are not globally
// reachable or embed an IPv4 address (only the well-known NAT64 prefix is judged by the
// address it embeds; the others are refused whatever they embed), the deprecated
// site-local range, multicast, and everything outside global unicast 2000::/3. First
// match wins.
constexpr Range kV6Ranges[] = {
    {"::/128", "unspecified", Verdict::kRefuse},
    {"::1/128", "loopback", Verdict::kRefuse},
    {"::ffff:0:0/96", "IPv4-mapped", Verdict::kRefuse},
    {"::ffff:0:0:0/96", "IPv4-translated", Verdict::kRefuse},
    {"::/96", "IPv4-compatible, deprecated", Verdict::kRefuse},
    {"64:ff9b::/96", "NAT64 well-known prefix", Verdict::kEmbeddedV4},
    {"64:ff9b:1::/48", "local-use NAT64", Verdict::kRefuse},
    {"100::/64", "discard-only", Verdict::kRefuse},
    {"100:0:0:1::/64", "dummy prefix", Verdict::kRefuse},
    {"2001::/32", "Teredo", Verdict::kRefuse},
    {"2001::/23", "IETF protocol assignments", Verdict::kRefuse},
    {"2001:db8::/32", "documentation", Verdict::kRefuse},
    {"2002::/16", "6to4", Verdict::kRefuse},
    {"3fff::/20", "documentation", Verdict::kRefuse},
    {"5f00::/16", "segment routing SIDs", Verdict::kRefuse},
    {"fc00::/7", "unique local", Verdict::kRefuse},
    {"fe80::/10", "link-local", Verdict::kRefuse},
    {"fec0::/10", "site-local, deprecated", Verdict::kRefuse},
    {"ff00::/8", "multicast", Verdict::kRefuse},
    {"2000::/3", "global unicast", Verdict::kGlobal},
    {"::/0", "outside global unicast 2000::/3", Verdict::kRefuse},
};

// A table entry in binary form.
struct Prefix {
  std::array<unsigned char, 16> bytes{};
  int bits = 0;
  const Range* range = nullptr;
};

// Parses a table (compiled in: a bad entry is a programming error and aborts).
template <size_t N>
std::vector<Prefix> Compile(const Range (&table)[N], int family) {
  std::vector<Prefix> out;
  for (const Range& r : table) {
    std::pair<std::string, std::string> parts = absl::StrSplit(r.prefix, '/');
    Prefix p;
    p.range = &r;
    const bool ok = inet_pton(family, parts.first.c_str(), p.bytes.data()) == 1 &&
                    absl::SimpleAtoi(parts.second, &p.bits) && p.bits >= 0 &&
                    p.bits <= (family == AF_INET ? 32 : 128);
    if (!ok) std::abort();
    out.push_back(p);
  }
  return out;
}

bool InPrefix(const unsigned char* address, const Prefix& p) {
  const int full = p.bits / 8, rest = p.bits % 8;
  if (std::memcmp(address, p.bytes.data(), full) != 0) return false;
  if (rest == 0) return true;
  const unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (address[full] & mask) == (p.bytes[full] & mask);
}

const Prefix& Match(const std::vector<Prefix>& table, const unsigned char* address) {
  for (const Prefix& p : table) {
    if (InPrefix(address, p)) return p;
  }
  return table.back();  // ::/0 and 0.0.0.0/0 match everything
}

std::string Describe(const Range& r) { return absl::StrCat(r.prefix, " (", r.name, ")"); }

std::optional<std::string> RefusedV4(const unsigned char* address) {
  static const auto* table = new std::vector<Prefix>(Compile(kV4Ranges, AF_INET));
  const Range& r = *Match(*table, address).range;
  if (r.verdict == Verdict::kGlobal) return std::nullopt;
  return Describe(r);
}

std::optional<std::string> RefusedV6(const unsigned char* address) {
  static const auto* table = new std::vector<Prefix>(Compile(kV6Ranges, AF_INET6));
  const Range& r = *Match(*table, address).range;
  switch (r.verdict) {
    case Verdict::kGlobal:
      return std::nullopt;
    case Verdict::kEmbeddedV4:
      if (auto embedded = RefusedV4(address + 12)) {
        return absl::StrCat(Describe(r), " embedding ", *embedded);
      }
      return std::nullopt;
    case Verdict::kRefuse:
      break;
  }
  return Describe(r);
}

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlStr {
  char* p = nullptr;
  ~CurlStr() { curl_free(p); }
};

// "localhost", "localhost." and names under it (RFC 6761: they resolve to loopback).
bool IsLocalhostName(absl::string_view host) {
  std::string h = absl::AsciiStrToLower(host);
  absl::string_view name = absl::StripSuffix(h, ".");
  return name == "localhost" || absl::EndsWith(name, ".localhost");
}

std::string PortList(const std::vector<int>& ports) { return absl::StrJoin(ports, ", "); }

}  // namespace

std::optional<std::string> RefusedRange(absl::string_view address) {
  const std::string text(address);
  unsigned char bytes[16];
  if (inet_pton(AF_INET, text.c_str(), bytes) == 1) return RefusedV4(bytes);
  if (inet_pton(AF_INET6, text.c_str(), bytes) == 1) return RefusedV6(bytes);
  return std::nullopt;
}

bool IsBlockedAddress(absl::string_view address) { return RefusedRange(address).has_value(); }

bool PortAllowed(const EndpointPolicy& policy, int port) {
  return std::find(policy.allowed_ports.begin(), policy.allowed_ports.end(), port) !=
         policy.allowed_ports.end();
}

absl::StatusOr<std::vector<int>> ParsePortList(absl::string_view text) {
  std::vector<int> ports;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int port = 0;
    if (!absl::SimpleAtoi(part, &port) || port < 1 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", part, "' is not a port: give comma-separated ports 1 to 65535"));
    }
    if (std::find(ports.begin(), ports.end(), port) == ports.end()) ports.push_back(port);
  }
  return ports;
}

absl::StatusOr<ParsedEndpoint> CheckEndpointUri(absl::string_view uri,
                                                const EndpointPolicy& policy) {
  if (uri.empty()) return absl::InvalidArgumentError("endpoint_uri is required");
  if (uri.size() > 2048) return absl::InvalidArgumentError("endpoint_uri is longer than 2048");
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  const std::string text(uri);
  if (curl_url_set(u.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
    return absl::InvalidArgumentError("endpoint_uri is not an absolute URI");
  }
  ParsedEndpoint out;
  CurlStr scheme, host, port, user, fragment, zone;
  curl_url_get(u.get(), CURLUPART_SCHEME, &scheme.p, 0);
  out.scheme = scheme.p ? absl::AsciiStrToLower(scheme.p) : "";
  if (out.scheme != "https" && !(out.scheme == "http" && policy.allow_http)) {
    return absl::InvalidArgumentError(policy.allow_http ? "endpoint_uri must be http or https"
                                                        : "endpoint_uri must be https");
  }
  if (curl_url_get(u.get(), CURLUPART_USER, &user.p, 0) == CURLUE_OK && user.p) {
    return absl::InvalidArgumentError("endpoint_uri must not carry user information");
  }
  if (curl_url_get(u.get(), CURLUPART_FRAGMENT, &fragment.p, 0) == CURLUE_OK && fragment.p) {
    return absl::InvalidArgumentError("endpoint_uri must not have a fragment");
  }
  if (curl_url_get(u.get(), CURLUPART_ZONEID, &zone.p, 0) == CURLUE_OK && zone.p) {
    return absl::InvalidArgumentError("endpoint_uri must not name an IPv6 zone");
  }
  if (curl_url_get(u.get(), CURLUPART_HOST, &host.p, 0) != CURLUE_OK || !host.p || !*host.p) {
    return absl::InvalidArgumentError("endpoint_uri has no host");
  }
  out.host = host.p;
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  curl_url_get(u.get(), CURLUPART_PORT, &port.p, CURLU_DEFAULT_PORT);
  if (!port.p || !absl::SimpleAtoi(port.p, &out.port)) {
    return absl::InvalidArgumentError("endpoint_uri has a bad port");
  }
  if (!PortAllowed(policy, out.port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint_uri port ", out.port,
                     " is not allowed (allowed: ", PortList(policy.allowed_ports), ")"));
  }
  if (!policy.allow_private_addresses) {
    if (auto range = RefusedRange(out.host)) {
      return absl::InvalidArgumentError(absl::StrCat("endpoint_uri names an address in ", *range,
                                                     ", which is not globally reachable"));
    }
    if (IsLocalhostName(out.host)) {
      return absl::InvalidArgumentError("endpoint_uri names localhost");
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> SystemHostResolver::Resolve(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve host: ", gai_strerror(rc)));
  }
  std::vector<std::string> out;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ai->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, buf, sizeof(buf));
    } else if (ai->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, buf,
                sizeof(buf));
    } else {
      continue;
    }
    out.emplace_back(buf);
  }
  freeaddrinfo(result);
  return out;
}

absl::StatusOr<std::string> ResolveAllowed(const ParsedEndpoint& endpoint,
                                           const EndpointPolicy& policy, HostResolver& resolver) {
  if (!PortAllowed(policy, endpoint.port)) {
    return absl::PermissionDeniedError(
        absl::StrCat("endpoint port ", endpoint.port, " is not allowed"));
  }
  auto addresses = resolver.Resolve(endpoint.host);
  if (!addresses.ok()) return addresses.status();
  std::string chosen;
  for (const std::string& address : *addresses) {
    // Only numeric addresses are pinned: anything else would be resolved again by curl.
    unsigned char bytes[16];
    const bool numeric = inet_pton(AF_INET, address.c_str(), bytes) == 1 ||
                         inet_pton(AF_INET6, address.c_str(), bytes) == 1;
    if (!numeric) continue;
    if (!policy.allow_private_addresses) {
      if (auto range = RefusedRange(address)) {
        return absl::PermissionDeniedError(
            absl::StrCat("endpoint resolves to an address in ", *range));
      }
    }
    if (chosen.empty()) chosen = address;
  }
  if (chosen.empty()) return absl::UnavailableError("host has no usable address");
  return chosen;
}

absl::StatusOr<std::string> ResolveAllowed(const ParsedEndpoint& endpoint,
                                           const EndpointPolicy& policy) {
  SystemHostResolver resolver;
  return ResolveAllowed(endpoint, policy, resolver);
}

}  // namespace rogatory::notification
