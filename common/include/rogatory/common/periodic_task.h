#pragma once

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rogatory::common {

// Runs `fn` on its own thread at once and then every `interval` until destroyed. For
// background upkeep (health probes, clock refresh); `fn` should hand slow work to async
// calls rather than block.
class PeriodicTask {
 public:
  PeriodicTask(absl::Duration interval, std::function<void()> fn);
  ~PeriodicTask();
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

 private:
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace rogatory::common
