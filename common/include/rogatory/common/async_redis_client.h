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

// RedisClient on one pipelined Redis connection (a libevent bufferevent, TLS through
// bufferevent_openssl when url.tls says so; hiredis for the protocol only), driven by a
// libevent loop on its own thread. The connection is ready once connected, verified (TLS)
// and through AUTH (with the ACL user) and SELECT. Commands issued while it is not ready
// fail at once with UNAVAILABLE saying why (IsRedisConfigurationError when the server's
// certificate did not verify or Redis refused the credentials); the client reconnects in
// the background with backoff and jitter. Every command has a timeout of its own. EVALSHA
// is re-sent as EVAL after NOSCRIPT.
std::unique_ptr<RedisClient> NewAsyncRedisClient(const AsyncRedisOptions& options);

}  // namespace rogatory::common
