#include "webhook_transport.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rogatory::notification {
namespace {

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

CurlWebhookTransport::CurlWebhookTransport(EndpointPolicy policy, absl::Duration timeout,
                                           HostResolver* resolver)
    : policy_(std::move(policy)),
      timeout_(timeout),
      resolver_(resolver != nullptr ? *resolver : system_resolver_) {
  GlobalInitOnce();
}

WebhookResult CurlWebhookTransport::Post(const WebhookPost& post) {
  WebhookResult result;
  auto endpoint = CheckEndpointUri(post.uri, policy_);
  if (!endpoint.ok()) {
    result.outcome = "blocked_endpoint";
    return result;
  }
  auto address = ResolveAllowed(*endpoint, policy_, resolver_);
  if (!address.ok()) {
    result.outcome = address.status().code() == absl::StatusCode::kPermissionDenied
                         ? "blocked_address"
                         : "resolve_failed";
    return result;
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    result.outcome = "client_error";
    return result;
  }
  const std::string pin = absl::StrCat(
      endpoint->host, ":", endpoint->port, ":",
      address->find(':') != std::string::npos ? absl::StrCat("[", *address, "]") : *address);
  curl_slist* resolve = curl_slist_append(nullptr, pin.c_str());
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  for (const auto& [name, value] : post.headers) {
    headers = curl_slist_append(headers, absl::StrCat(name, ": ", value).c_str());
  }
  const long total_ms =
      static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout_)));
  curl_easy_setopt(curl, CURLOPT_URL, post.uri.c_str());
  curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post.body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(post.body.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::min(total_ms, 5000L));
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, policy_.allow_http ? "http,https" : "https");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Discard);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "rogatory-notification/1");
  const CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    result.http_status = static_cast<int>(code);
    result.outcome = absl::StrCat("http_", code / 100, "xx");
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    result.outcome = "timeout";
  } else if (rc == CURLE_COULDNT_CONNECT) {
    result.outcome = "connect_failed";
  } else {
    result.outcome = "transport_error";
  }
  curl_slist_free_all(headers);
  curl_slist_free_all(resolve);
  curl_easy_cleanup(curl);
  return result;
}

}  // namespace rogatory::notification
