#include "inbox_append_listener.h"

#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "notification_keys.h"

namespace rogatory::notification {
namespace {

// "<entry id> <inbox key>" as inbox_deliver.lua publishes it.
common::PubSubListener::Callbacks Parse(InboxAppendListener::Callbacks callbacks) {
  common::PubSubListener::Callbacks out;
  out.on_subscribed = std::move(callbacks.on_subscribed);
  out.on_message = [on_append = std::move(callbacks.on_append)](const std::string& payload) {
    const absl::string_view text(payload);
    const size_t space = text.find(' ');
    if (space == absl::string_view::npos || !on_append) return;
    on_append(std::string(text.substr(space + 1)), std::string(text.substr(0, space)));
  };
  return out;
}

}  // namespace

InboxAppendListener::InboxAppendListener(common::RedisUrl url, Callbacks callbacks,
                                         absl::Duration max_backoff)
    : listener_(std::move(url), Keys::InboxAppendedChannel(), Parse(std::move(callbacks)),
                max_backoff) {}

}  // namespace rogatory::notification
