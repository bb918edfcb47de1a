#include "wakeups.h"

#include <algorithm>

namespace rogatory::notification {

void FanoutWakeups::Wake(int shard) {
  absl::MutexLock lock(&mu_);
  if (std::find(woken_.begin(), woken_.end(), shard) == woken_.end()) woken_.push_back(shard);
}

std::vector<int> FanoutWakeups::Wait(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopped_ || !woken_.empty(); };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  std::vector<int> out;
  out.swap(woken_);
  return out;
}

std::vector<int> FanoutWakeups::Take() {
  absl::MutexLock lock(&mu_);
  std::vector<int> out;
  out.swap(woken_);
  return out;
}

void FanoutWakeups::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

bool FanoutWakeups::stopped() {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

InboxWakeups::Handle InboxWakeups::Watch(const std::string& inbox, Wake wake) {
  absl::MutexLock lock(&mu_);
  const Handle handle = ++next_;
  watchers_[inbox].emplace(handle, std::move(wake));
  return handle;
}

void InboxWakeups::Unwatch(const std::string& inbox, Handle handle) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(inbox);
  if (it == watchers_.end()) return;
  it->second.erase(handle);
  if (it->second.empty()) watchers_.erase(it);
}

void InboxWakeups::Notify(const std::string& inbox, const std::string& entry_id) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(inbox);
  if (it == watchers_.end()) return;
  for (auto& [handle, wake] : it->second) wake(entry_id);
}

}  // namespace rogatory::notification
