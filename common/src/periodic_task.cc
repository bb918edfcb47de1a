#include "rogatory/common/periodic_task.h"

namespace rogatory::common {

PeriodicTask::PeriodicTask(absl::Duration interval, std::function<void()> fn) {
  thread_ = std::thread([this, interval, fn = std::move(fn)] {
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      mu_.Unlock();
      fn();
      mu_.Lock();
      // Wakes early when stopped.
      mu_.AwaitWithTimeout(absl::Condition(&stop_), interval);
    }
  });
}

PeriodicTask::~PeriodicTask() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

}  // namespace rogatory::common
