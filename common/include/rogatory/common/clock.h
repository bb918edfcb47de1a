#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>

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
//
// A clock that is moved (a test clock) tells whoever waits for an instant of its wall time:
// AddMoveObserver registers a callback run after every move (real clocks never call it).
// A loop that sleeps until a wall-clock instant registers one to wake up when a test moves
// the clock past it.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  virtual MonotonicTime MonotonicNow() const = 0;
  // Runs `on_move` after each move of this clock's wall time, on the thread that moved it,
  // until RemoveMoveObserver(the id returned); it must be short and must not move the
  // clock. The default (a clock that only runs) never calls it.
  virtual uint64_t AddMoveObserver(std::function<void()> on_move) const {
    (void)on_move;
    return 0;
  }
  // Once it returns, the observer runs no more (a call in progress has finished).
  virtual void RemoveMoveObserver(uint64_t id) const { (void)id; }
};

// The observers of a clock that can be moved: for Clock implementations.
class MoveObservers {
 public:
  uint64_t Add(std::function<void()> on_move) {
    absl::MutexLock lock(&mu_);
    observers_.emplace(++last_id_, std::move(on_move));
    return last_id_;
  }
  void Remove(uint64_t id) {
    absl::MutexLock lock(&mu_);
    observers_.erase(id);
  }
  // Runs every observer (under the lock, so Remove waits for a call in progress).
  void Notify() {
    absl::MutexLock lock(&mu_);
    for (auto& [id, on_move] : observers_) on_move();
  }

 private:
  absl::Mutex mu_;
  uint64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, std::function<void()>> observers_ ABSL_GUARDED_BY(mu_);
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
    {
      absl::MutexLock lock(&mu_);
      now_ = t;
    }
    observers_.Notify();
  }
  void Advance(absl::Duration d) {
    {
      absl::MutexLock lock(&mu_);
      now_ += d;
      if (d > absl::ZeroDuration()) monotonic_ += d;
    }
    observers_.Notify();
  }
  uint64_t AddMoveObserver(std::function<void()> on_move) const override {
    return observers_.Add(std::move(on_move));
  }
  void RemoveMoveObserver(uint64_t id) const override { observers_.Remove(id); }

 private:
  mutable MoveObservers observers_;
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  // An arbitrary origin, away from the default MonotonicTime.
  MonotonicTime monotonic_ ABSL_GUARDED_BY(mu_) = MonotonicTime::FromOrigin(absl::Hours(1));
};

}  // namespace rogatory::common
