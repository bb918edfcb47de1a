#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/pipeline.h"

namespace rogatory::common {

struct RateLimitOptions {
  // Sustained calls per second each caller may make to this replica; 0 turns limiting off.
  double rate_per_second = 0;
  // Calls a caller may make at once after being idle (the bucket's size); at least 1.
  int burst = 1;
  // Distinct callers tracked at once. Idle callers whose bucket has refilled are forgotten
  // (losslessly: a full bucket is what a new caller gets); past this many busy ones, new
  // callers are refused until some go idle, so memory stays bounded whatever the callers.
  size_t max_callers = 100000;
};

// A token bucket per caller authority, per replica: each call takes one token; tokens come
// back at `rate_per_second` up to `burst`. A call finding no token answers
// RESOURCE_EXHAUSTED with a google.rpc.RetryInfo saying when one will be there. Other
// Rogatory services (caller.is_service) are not limited: event deliveries have their own
// backpressure (the outbox relay retries) and must not starve behind external callers.
// Thread-safe.
class TokenBucketRateLimiter final : public RateLimiter {
 public:
  // Tokens come back with `clock`'s monotonic reading.
  TokenBucketRateLimiter(RateLimitOptions options, const Clock& clock);

  absl::Status Admit(const Caller& caller, absl::string_view method) override;

  // Callers currently tracked (for tests and the bounded-memory contract).
  size_t tracked_callers() const;

 private:
  struct Bucket {
    double tokens = 0;
    MonotonicTime updated;
  };
  // Drops the buckets that have refilled completely. Called when the table grows.
  void EvictFullBuckets(MonotonicTime now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RateLimitOptions options_;
  const Clock& clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  size_t sweep_at_ ABSL_GUARDED_BY(mu_) = 1024;  // table size that triggers a sweep
};

}  // namespace rogatory::common
