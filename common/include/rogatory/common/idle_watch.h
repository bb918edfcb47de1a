#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rogatory/common/clock.h"

namespace rogatory::common {

// Ends streams whose caller has gone silent: a client-streaming upload waiting for a
// message that never comes holds its place among its caller's streams and the server's
// calls (Pipeline::SetCallerLimits, SetMaxConcurrentCalls) until something ends it. One
// thread serves every stream; no stream holds a thread or a timer of its own.
//
// A stream arms its entry whenever it waits on its caller (right before StartRead) and
// disarms it when the caller answers (first thing in OnReadDone). An entry armed for
// `timeout` expires: its callback runs once, on the watch's thread, and owns the stream's
// end from then on (Disarm answers false, so the stream's own path leaves it alone).
// Thread-safe.
class IdleWatch {
 public:
  class Entry {
   public:
    // The stream waits on its caller from now.
    void Arm();
    // The caller answered. False when the entry had expired: the expiry callback then
    // ends the stream, and the caller must do nothing more with it.
    bool Disarm();

   private:
    friend class IdleWatch;
    absl::Mutex mu_;
    bool armed_ ABSL_GUARDED_BY(mu_) = false;
    bool expired_ ABSL_GUARDED_BY(mu_) = false;
    absl::Time armed_at_ ABSL_GUARDED_BY(mu_);
    std::function<void()> on_expired_;
    const Clock* clock_ = nullptr;
  };

  // Checks every `check_interval` on its own thread; `timeout` zero: entries never expire.
  // `clock` must outlive the watch (real time: a moved test clock must not end uploads).
  IdleWatch(const Clock& clock, absl::Duration timeout, absl::Duration check_interval);
  // Stops the thread; expires nothing more.
  ~IdleWatch();
  IdleWatch(const IdleWatch&) = delete;
  IdleWatch& operator=(const IdleWatch&) = delete;

  // A new entry for one stream (disarmed). The watch keeps only a weak reference: the
  // stream owns the entry, and `on_expired` may refer to the stream.
  std::shared_ptr<Entry> Watch(std::function<void()> on_expired);
  // One check now (tests drive it with a simulated clock). Returns how many expired.
  int CheckNow();
  // Entries armed now (tests poll it to know a stream waits on its caller).
  int armed();
  absl::Duration timeout() const { return timeout_; }

 private:
  const Clock& clock_;
  const absl::Duration timeout_;
  absl::Mutex mu_;
  std::vector<std::weak_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace rogatory::common
