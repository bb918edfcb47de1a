#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {

struct AsyncRedisOptions {
  RedisUrl url;
  // Every command fails with UNAVAILABLE if no reply comes within this time.
  absl::Duration command_timeout = absl::Milliseconds(500);
  // A connection attempt is abandoned after this time.
  absl::Duration connect_timeout = absl::Seconds(1);
  // Reconnect attempts back off exponentially up to this, with jitter.
  absl::Duration max_backoff = absl::Seconds(2);
};

// RedisClient on hiredis's asynchronous API, driven by a libevent loop on its own thread.
// Commands issued while disconnected fail at once with UNAVAILABLE; the client reconnects
// in the background with backoff. Every command has a timeout of its own (hiredis 0.14's
// async API has none).
std::unique_ptr<RedisClient> NewAsyncRedisClient(const AsyncRedisOptions& options);

}  // namespace rogatory::common
