#include "rogatory/common/idle_watch.h"

namespace rogatory::common {

void IdleWatch::Entry::Arm() {
  absl::MutexLock lock(&mu_);
  if (expired_) return;
  armed_ = true;
  armed_at_ = clock_->Now();
}

bool IdleWatch::Entry::Disarm() {
  absl::MutexLock lock(&mu_);
  armed_ = false;
  return !expired_;
}

IdleWatch::IdleWatch(const Clock& clock, absl::Duration timeout, absl::Duration check_interval)
    : clock_(clock), timeout_(timeout) {
  thread_ = std::thread([this, check_interval] {
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(&stop_), check_interval)) {
      mu_.Unlock();
      CheckNow();
      mu_.Lock();
    }
  });
}

IdleWatch::~IdleWatch() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

std::shared_ptr<IdleWatch::Entry> IdleWatch::Watch(std::function<void()> on_expired) {
  auto entry = std::make_shared<Entry>();
  entry->on_expired_ = std::move(on_expired);
  entry->clock_ = &clock_;
  absl::MutexLock lock(&mu_);
  entries_.push_back(entry);
  return entry;
}

int IdleWatch::CheckNow() {
  std::vector<std::shared_ptr<Entry>> live;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::weak_ptr<Entry>> kept;
    for (auto& weak : entries_) {
      if (auto entry = weak.lock()) {
        live.push_back(std::move(entry));
        kept.push_back(std::move(weak));
      }
    }
    entries_.swap(kept);
  }
  if (timeout_ <= absl::ZeroDuration()) return 0;
  const absl::Time now = clock_.Now();
  int expired = 0;
  for (auto& entry : live) {
    {
      absl::MutexLock lock(&entry->mu_);
      if (!entry->armed_ || now - entry->armed_at_ < timeout_) continue;
      entry->armed_ = false;
      entry->expired_ = true;
    }
    ++expired;
    entry->on_expired_();  // outside every lock: it ends the stream
  }
  return expired;
}

int IdleWatch::armed() {
  std::vector<std::shared_ptr<Entry>> live;
  {
    absl::MutexLock lock(&mu_);
    for (auto& weak : entries_) {
      if (auto entry = weak.lock()) live.push_back(std::move(entry));
    }
  }
  int n = 0;
  for (auto& entry : live) {
    absl::MutexLock lock(&entry->mu_);
    if (entry->armed_) ++n;
  }
  return n;
}

}  // namespace rogatory::common
