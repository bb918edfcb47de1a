#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rogatory::notification {

// Process-local wake-ups between the notification service's stages, so work written in
// this process is taken up at once instead of at the next poll. The fan-out still polls (at
// `notification-poll-interval`) for work other replicas write; Subscribe streams learn of
// other replicas' inbox appends through Redis pub/sub (InboxAppendListener notifies here too).
// Neither class ever blocks on Redis: Wake and Notify are called from Redis callbacks.

// Which shards' fan-out outboxes have new entries: the event handler wakes the fan-out
// worker through it right after its receiving script wrote one. Shared (std::shared_ptr) by
// both, so a late Redis callback never outlives what it wakes. Thread-safe.
class FanoutWakeups {
 public:
  void Wake(int shard);
  // Waits until a shard is woken, Stop is called or `timeout` passes; returns (and forgets)
  // the shards woken meanwhile.
  std::vector<int> Wait(absl::Duration timeout);
  // The shards woken so far, without waiting.
  std::vector<int> Take();
  // Wait returns at once from now on.
  void Stop();
  bool stopped();

 private:
  absl::Mutex mu_;
  std::vector<int> woken_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

// Subscribe readers waiting on an inbox: the fan-out worker notifies an inbox right after
// writing a notification into it, and the pub/sub listener when any replica did; that
// inbox's readers in this process read at once (unless they already read past the entry).
// Thread-safe.
class InboxWakeups {
 public:
  using Handle = uint64_t;
  // Runs `wake(entry_id)` on every Notify of `inbox` (an inbox key) until Unwatch. `wake`
  // runs under this object's lock on the notifier's thread: it must be short and never call
  // back here.
  using Wake = std::function<void(const std::string& entry_id)>;
  Handle Watch(const std::string& inbox, Wake wake);
  void Unwatch(const std::string& inbox, Handle handle);
  // `inbox` got entry `entry_id` (empty: some entry, unknown which).
  void Notify(const std::string& inbox, const std::string& entry_id = "");

 private:
  absl::Mutex mu_;
  Handle next_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, absl::flat_hash_map<Handle, Wake>> watchers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::notification
