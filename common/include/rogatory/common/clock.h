#pragma once

#include <chrono>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rogatory::common {

// A reading of a monotonic clock: an instant measured from an arbitrary origin (the same
// for every reading of one Clock), which never goes back. Only comparable with readings of
// the same Clock; it has no calendar meaning and, being its own type, cannot be mixed with
// an absl::Time (wall time, which may jump). The difference of two readings is an
// absl::Duration: elapsed time, the thing latency metrics and pacing loops want.
class MonotonicTime {
 public:
  constexpr MonotonicTime() = default;  // the origin
  static constexpr MonotonicTime FromOrigin(absl::Duration since_origin) {
    return MonotonicTime(since_origin);
  }
  // Before (after) every reading: "never happened" ("never").
  static constexpr MonotonicTime InfinitePast() { return MonotonicTime(-absl::InfiniteDuration()); }
  static constexpr MonotonicTime InfiniteFuture() {
    return MonotonicTime(absl::InfiniteDuration());
  }
  absl::Duration SinceOrigin() const { return since_origin_; }

  MonotonicTime& operator+=(absl::Duration d) {
    since_origin_ += d;
    return *this;
  }
  MonotonicTime& operator-=(absl::Duration d) {
    since_origin_ -= d;
    return *this;
  }
  friend MonotonicTime operator+(MonotonicTime t, absl::Duration d) { return t += d; }
  friend MonotonicTime operator+(absl::Duration d, MonotonicTime t) { return t += d; }
  friend MonotonicTime operator-(MonotonicTime t, absl::Duration d) { return t -= d; }
  friend absl::Duration operator-(MonotonicTime a, MonotonicTime b) {
    return a.since_origin_ - b.since_origin_;
  }
  friend bool operator==(MonotonicTime a, MonotonicTime b) {
    return a.since_origin_ == b.since_origin_;
  }
  friend bool operator!=(MonotonicTime a, MonotonicTime b) { return !(a == b); }
  friend bool operator<(MonotonicTime a, MonotonicTime b) {
    return a.since_origin_ < b.since_origin_;
  }
  friend bool operator>(MonotonicTime a, MonotonicTime b) { return b < a; }
  friend bool operator<=(MonotonicTime a, MonotonicTime b) { return !(b < a); }
  friend bool operator>=(MonotonicTime a, MonotonicTime b) { return !(a < b); }

 private:
  constexpr explicit MonotonicTime(absl::Duration since_origin) : since_origin_(since_origin) {}
  absl::Duration since_origin_;
};

// The only source of time for services (Envoy's TimeSource): Now() is wall time, for
// everything with a calendar meaning (timestamps, due dates, retention cut-offs, ids);
// MonotonicNow() is elapsed time, for latencies, timeouts, leases renewed on a schedule
// and pacing loops. Production code takes a Clock& and never calls absl::Now(),
// std::chrono::system_clock or std::chrono::steady_clock (tools/lint/clock_calls.py), so
// tests can drive time. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  virtual MonotonicTime MonotonicNow() const = 0;
};

// The system's clocks: wall time, and std::chrono::steady_clock as the monotonic reading.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  MonotonicTime MonotonicNow() const override {
    return MonotonicTime::FromOrigin(
        absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch()));
  }
};

// A clock that moves only when told. For unit tests. Advance moves wall time and the
// monotonic reading together; Set moves wall time only (as a wall clock being set does),
// and Advance by a negative duration moves wall time back but leaves the monotonic reading
// where it is, so that it never goes back. Code that paces itself by the monotonic reading
// (polls, upkeep every N seconds) therefore sees time pass only when a test advances it.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::FromUnixSeconds(1767225600))  // 2026-01-01
      : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  MonotonicTime MonotonicNow() const override {
    absl::MutexLock lock(&mu_);
    return monotonic_;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
    if (d > absl::ZeroDuration()) monotonic_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  // An arbitrary origin, away from the default MonotonicTime.
  MonotonicTime monotonic_ ABSL_GUARDED_BY(mu_) = MonotonicTime::FromOrigin(absl::Hours(1));
};

}  // namespace rogatory::common
