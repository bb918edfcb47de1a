#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {

// What a service's readiness must reflect about Redis (issue 22, item 12): whether the
// calls it serves can succeed, not merely whether Redis answers PING.
//
// A RedisClient that hands every command to `inner` and counts those that fail as
// UNAVAILABLE (no answer within the timeout, connection lost or not yet back, LOADING,
// OOM, READONLY, BUSY...), and a probe that takes the path every call's audit record takes:
// a Lua script (EVALSHA, re-sent after NOSCRIPT) that writes a key. PING passes where
// writes fail (a read-only replica, a full memory, a refused AOF write), and a probe once
// a second misses a stall between two probes that the calls in flight do see; together
// they do not. Thread-safe.
class RedisReadiness final : public RedisClient {
 public:
  // `probe_key` is written by each probe and expires after `probe_ttl`.
  RedisReadiness(std::unique_ptr<RedisClient> inner, std::string probe_key,
                 absl::Duration probe_ttl);
  // Destroys `inner` first: the callbacks it still runs use this object.
  ~RedisReadiness() override;

  void Command(std::vector<std::string> args, RedisCallback done) override;
  void Eval(const LuaScript& script, std::vector<std::string> keys, std::vector<std::string> args,
            RedisCallback done) override;

  // Runs one probe. `done` (on the client's thread) gets OK when the probe's write
  // succeeded and no command failed as UNAVAILABLE since the previous probe began;
  // otherwise UNAVAILABLE saying why. Readiness is SERVING only on OK, so one failed
  // window keeps it NOT_SERVING until the next clean one.
  void Probe(std::function<void(absl::Status)> done);

  // Commands that failed as UNAVAILABLE since this object was made (for tests, metrics).
  int64_t unavailable_failures() const { return total_failures_.load(); }

 private:
  RedisCallback Watch(RedisCallback done);

  std::unique_ptr<RedisClient> inner_;
  const std::string probe_key_;
  const absl::Duration probe_ttl_;
  std::atomic<int64_t> window_failures_{0};  // since the last probe began
  std::atomic<int64_t> total_failures_{0};
  absl::Mutex mu_;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::common
