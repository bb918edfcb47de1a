#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {

// One Redis pub/sub connection SUBSCRIBEd to one channel: how a process hears that another
// process appended something it must act on (notification's inbox appends, a relay's outbox
// commits). Runs its own Redis connection (TLS and ACL user as `url` says) on a libevent
// loop of its own thread; reconnects with backoff when Redis goes away.
// Pub/sub is not durable: a message published while this connection is down is lost, so
// every time the subscription is (re)confirmed `on_subscribed` runs and the owner looks at
// everything once; its safety-net poll covers the rest.
//
// Callbacks run on the listener's thread: they must be short and never block on Redis.
class PubSubListener {
 public:
  struct Callbacks {
    // A message on the channel (its payload as published).
    std::function<void(const std::string& payload)> on_message;
    // The subscription is confirmed (first connection and every reconnection).
    std::function<void()> on_subscribed;
    // The connection was lost (messages from now on are lost until on_subscribed).
    std::function<void()> on_lost;
  };
  PubSubListener(RedisUrl url, std::string channel, Callbacks callbacks,
                 absl::Duration max_backoff = absl::Seconds(2));
  // Stops the loop and closes the connection; no callback runs after it returns.
  ~PubSubListener();

  // How many times the subscription was confirmed (tests and metrics).
  int subscriptions() const { return subscriptions_.load(); }

 private:
  class Loop;
  std::atomic<int> subscriptions_{0};
  std::unique_ptr<Loop> loop_;
};

}  // namespace rogatory::common
