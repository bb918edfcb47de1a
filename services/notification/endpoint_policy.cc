#include "endpoint_policy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rogatory::notification {
namespace {

bool BlockedV4(uint32_t a) {  // host byte order
  auto in = [a](uint32_t net, int bits) {
    const uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
    return (a & mask) == (net & mask);
  };
  return in(0x00000000, 8) ||   // 0.0.0.0/8 "this network"
         in(0x7F000000, 8) ||   // loopback
         in(0x0A000000, 8) ||   // 10/8
         in(0xAC100000, 12) ||  // 172.16/12
         in(0xC0A80000, 16) ||  // 192.168/16
         in(0xA9FE0000, 16) ||  // link-local (cloud metadata lives here)
         in(0x64400000, 10) ||  // 100.64/10 shared address space
         in(0xC0000000, 24) ||  // 192.0.0/24 protocol assignments
         in(0xE0000000, 4) ||   // multicast
         in(0xF0000000, 4);     // reserved and broadcast
}

bool BlockedV6(const unsigned char *b) {
  static const unsigned char kZero[16] = {};
  if (std::memcmp(b, kZero, 15) == 0 && (b[15] == 0 || b[15] == 1)) return true;  // :: and ::1
  const bool mapped = std::memcmp(b, kZero, 10) == 0 && b[10] == 0xff && b[11] == 0xff;
  if (mapped) {
    return BlockedV4((uint32_t{b[12]} << 24) | (uint32_t{b[13]} << 16) | (uint32_t{b[14]} << 8) |
                     b[15]);
  }
  if ((b[0] & 0xfe) == 0xfc) return true;                  // fc00::/7 unique local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true;  // fe80::/10 link-local
  if (b[0] == 0xff) return true;                           // multicast
  return false;
}

struct UrlDeleter {
  void operator()(CURLU *u) const { curl_url_cleanup(u); }
};
struct CurlStr {
  char *p = nullptr;
  ~CurlStr() { curl_free(p); }
};

}  // namespace

bool IsBlockedAddress(absl::string_view address) {
  const std::string text(address);
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return BlockedV4(ntohl(v4.s_addr));
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) return BlockedV6(v6.s6_addr);
  return false;
}

absl::StatusOr<ParsedEndpoint> CheckEndpointUri(absl::string_view uri,
                                                const EndpointPolicy &policy) {
  if (uri.empty()) return absl::InvalidArgumentError("endpoint_uri is required");
  if (uri.size() > 2048) return absl::InvalidArgumentError("endpoint_uri is longer than 2048");
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  const std::string text(uri);
  if (curl_url_set(u.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
    return absl::InvalidArgumentError("endpoint_uri is not an absolute URI");
  }
  ParsedEndpoint out;
  CurlStr scheme, host, port, user, fragment;
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
  if (!policy.allow_private_addresses &&
      (IsBlockedAddress(out.host) || absl::AsciiStrToLower(out.host) == "localhost")) {
    return absl::InvalidArgumentError(
        "endpoint_uri names a loopback, link-local or private address");
  }
  return out;
}

absl::StatusOr<std::string> ResolveAllowed(const ParsedEndpoint &endpoint,
                                           const EndpointPolicy &policy) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *result = nullptr;
  const int rc = getaddrinfo(endpoint.host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve host: ", gai_strerror(rc)));
  }
  std::string chosen;
  bool blocked = false;
  for (addrinfo *ai = result; ai != nullptr; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ai->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(ai->ai_addr)->sin_addr, buf, sizeof(buf));
    } else if (ai->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6 *>(ai->ai_addr)->sin6_addr, buf,
                sizeof(buf));
    } else {
      continue;
    }
    if (IsBlockedAddress(buf)) blocked = true;
    if (chosen.empty()) chosen = buf;
  }
  freeaddrinfo(result);
  if (blocked && !policy.allow_private_addresses) {
    return absl::PermissionDeniedError("endpoint resolves to a blocked address");
  }
  if (chosen.empty()) return absl::UnavailableError("host has no usable address");
  return chosen;
}

}  // namespace rogatory::notification
