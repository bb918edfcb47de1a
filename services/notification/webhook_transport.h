#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "endpoint_policy.h"

namespace rogatory::notification {

// One HTTP POST of a webhook.
struct WebhookPost {
  std::string uri;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Result of a POST that reached the point of an HTTP answer (or not).
struct WebhookResult {
  int http_status = 0;  // 0 when no HTTP answer came
  std::string outcome;  // "http_2xx"-style class or "timeout", "connect_failed", ...
};

// Sends webhooks. Implementations are thread-safe; Post blocks the calling
// worker thread (never a gRPC or Redis callback thread) for at most the
// configured timeout.
class WebhookTransport {
 public:
  virtual ~WebhookTransport() = default;
  virtual WebhookResult Post(const WebhookPost& post) = 0;
};

// libcurl, with connect and total timeouts, no redirects, and the connection
// pinned to an address that passed the endpoint policy (so DNS cannot rebind
// between check and connect). `resolver` (not owned, outlives the transport; null: the
// system's) resolves endpoint hosts.
class CurlWebhookTransport final : public WebhookTransport {
 public:
  CurlWebhookTransport(EndpointPolicy policy, absl::Duration timeout,
                       HostResolver* resolver = nullptr);
  WebhookResult Post(const WebhookPost& post) override;

 private:
  const EndpointPolicy policy_;
  const absl::Duration timeout_;
  SystemHostResolver system_resolver_;
  HostResolver& resolver_;
};

}  // namespace rogatory::notification
