#pragma once

#include <random>

#include "absl/time/time.h"

namespace rogatory::common {

// Exponential backoff with "equal jitter", the one used by every retry loop (the Redis
// reconnect, the outbox relay's lanes, the webhook dispatcher): the delay before retry
// `attempt` (1 for the first) is d = min(initial * 2^(attempt - 1), max), of which the upper
// half is randomised: d/2 + d/2 * u, u uniform in [0, 1). Replicas that failed together so
// retry apart, and none waits less than half its step. An attempt below 1 counts as 1.
struct Backoff {
  absl::Duration initial;
  absl::Duration max;

  // The delay for `attempt` with the random fraction `u` (in [0, 1]): pure.
  absl::Duration Delay(int attempt, double u) const;

  // The delay for `attempt`, drawing u from `random` (a uniform random bit generator such as
  // std::minstd_rand; not thread-safe: the caller owns it).
  template <typename Random>
  absl::Duration Delay(int attempt, Random& random) const {
    return Delay(attempt, std::uniform_real_distribution<double>(0.0, 1.0)(random));
  }
};

}  // namespace rogatory::common
