#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace rogatory::notification {

// Replies for a batch of Redis calls in flight at once, filled in by their callbacks while
// the worker thread waits for all of them.
template <typename T>
class BatchOutcomes {
 public:
  explicit BatchOutcomes(size_t n) : outcomes_(n, absl::UnknownError("no reply")) {}
  void Started() {
    absl::MutexLock lock(&mu_);
    ++outstanding_;
  }
  void Finished(size_t i, absl::StatusOr<T> outcome) {
    absl::MutexLock lock(&mu_);
    outcomes_[i] = std::move(outcome);
    --outstanding_;
  }
  // Every call finishes: the Redis client times commands out, and the auditor answers.
  std::vector<absl::StatusOr<T>> Wait() {
    absl::MutexLock lock(&mu_);
    auto all_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; };
    mu_.Await(absl::Condition(&all_done));
    return std::move(outcomes_);
  }

 private:
  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<absl::StatusOr<T>> outcomes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::notification
