#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "rogatory/common/pubsub_listener.h"
#include "rogatory/common/redis.h"

namespace rogatory::notification {

// The one Redis pub/sub connection of a notification process: SUBSCRIBEs to
// Keys::InboxAppendedChannel(), on which inbox_deliver.lua publishes every inbox append
// ("<entry id> <inbox key>"), so a Subscribe stream wakes whichever replica's fan-out wrote
// its inbox. A common::PubSubListener (its own thread and libevent loop; reconnects with
// backoff when Redis goes away).
// Pub/sub is not durable: a message published while this connection is down is lost, so
// every time the subscription is (re)confirmed `on_subscribed` runs and the service reads
// every stream once; its safety-net re-read (stream-recheck-interval) covers the rest.
//
// Callbacks run on the listener's thread: they must be short and never block on Redis.
class InboxAppendListener {
 public:
  struct Callbacks {
    // An inbox got entry `entry_id` (its key and the entry's id as published).
    std::function<void(const std::string& inbox, const std::string& entry_id)> on_append;
    // The subscription is confirmed (first connection and every reconnection).
    std::function<void()> on_subscribed;
  };
  InboxAppendListener(common::RedisUrl url, Callbacks callbacks,
                      absl::Duration max_backoff = absl::Seconds(2));
  // Stops the loop and closes the connection; no callback runs after it returns.
  ~InboxAppendListener() = default;

  // How many times the subscription was confirmed (tests and metrics).
  int subscriptions() const { return listener_.subscriptions(); }

 private:
  common::PubSubListener listener_;
};

}  // namespace rogatory::notification
