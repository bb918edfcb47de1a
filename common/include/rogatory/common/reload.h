#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rogatory::common {

// Calls `on_change` when anything in a directory changes (a file written, created, moved in
// or removed). Watches the directory, not a file, because Kubernetes updates a mounted
// ConfigMap by swapping a symlink inside it. Changes within `settle` of each other are
// reported once. Runs its own thread; `on_change` runs on it.
class DirectoryWatcher {
 public:
  static absl::StatusOr<std::unique_ptr<DirectoryWatcher>> Start(
      const std::string& directory, std::function<void()> on_change,
      absl::Duration settle = absl::Milliseconds(200));
  ~DirectoryWatcher();

 private:
  DirectoryWatcher(int inotify_fd, int stop_fd, std::function<void()> on_change,
                   absl::Duration settle);
  void Loop();

  const int inotify_fd_;
  const int stop_fd_;
  const std::function<void()> on_change_;
  const absl::Duration settle_;
  std::thread thread_;
};

// Reload hooks: what a service re-reads on SIGHUP or when its data folder changes
// (registry, rules, calendars). A hook keeps the old data when the new data is bad, and says
// so in the log. Thread-safe.
class ReloadHooks {
 public:
  void Add(std::string name, std::function<absl::Status()> reload);
  // Runs every hook; logs each outcome.
  void RunAll();

 private:
  absl::Mutex mu_;
  std::vector<std::pair<std::string, std::function<absl::Status()>>> hooks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::common
