#include "rogatory/common/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/rpc/error_details.pb.h"
#include "rogatory/common/status.h"

namespace rogatory::common {
namespace {

constexpr absl::string_view kRetryInfoType = "type.googleapis.com/google.rpc.RetryInfo";

absl::Status Exhausted(std::string message, std::chrono::nanoseconds retry_after) {
  absl::Status status = absl::ResourceExhaustedError(std::move(message));
  google::rpc::RetryInfo info;
  const int64_t nanos = std::max<int64_t>(retry_after.count(), 1'000'000);
  info.mutable_retry_delay()->set_seconds(nanos / 1'000'000'000);
  info.mutable_retry_delay()->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  status.SetPayload(kRetryInfoType, absl::Cord(info.SerializeAsString()));
  return WithReason(std::move(status), v1::ERROR_REASON_RATE_LIMITED);
}

}  // namespace

TokenBucketRateLimiter::TokenBucketRateLimiter(RateLimitOptions options, const Clock& clock)
    : options_(options), clock_(clock) {}

absl::Status TokenBucketRateLimiter::Admit(const Caller& caller, absl::string_view method) {
  (void)method;
  if (options_.rate_per_second <= 0 || caller.is_service) return absl::OkStatus();
  const double burst = std::max(1, options_.burst);
  const MonotonicTime now = clock_.MonotonicNow();
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(caller.authority_id);
  if (it == buckets_.end()) {
    if (buckets_.size() >= sweep_at_ || buckets_.size() >= options_.max_callers) {
      EvictFullBuckets(now);
      sweep_at_ = std::max<size_t>(1024, 2 * buckets_.size());
    }
    if (buckets_.size() >= options_.max_callers) {
      return Exhausted("too many distinct callers are busy on this server; retry later",
                       std::chrono::seconds(1));
    }
    it = buckets_.emplace(caller.authority_id, Bucket{burst, now}).first;
  }
  Bucket& b = it->second;
  const double elapsed = absl::ToDoubleSeconds(now - b.updated);
  if (elapsed > 0) {
    b.tokens = std::min(burst, b.tokens + elapsed * options_.rate_per_second);
    b.updated = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return absl::OkStatus();
  }
  const double wait_seconds = (1 - b.tokens) / options_.rate_per_second;
  return Exhausted(
      absl::StrFormat("rate limit: at most %g calls per second (bursts of %d) per caller; "
                      "retry later",
                      options_.rate_per_second, static_cast<int>(burst)),
      std::chrono::nanoseconds(static_cast<int64_t>(std::ceil(wait_seconds * 1e9))));
}

void TokenBucketRateLimiter::EvictFullBuckets(MonotonicTime now) {
  const double burst = std::max(1, options_.burst);
  absl::erase_if(buckets_, [&](const auto& entry) {
    const Bucket& b = entry.second;
    const double elapsed = absl::ToDoubleSeconds(now - b.updated);
    return b.tokens + elapsed * options_.rate_per_second >= burst;
  });
}

size_t TokenBucketRateLimiter::tracked_callers() const {
  absl::MutexLock lock(&mu_);
  return buckets_.size();
}

}  // namespace rogatory::common
