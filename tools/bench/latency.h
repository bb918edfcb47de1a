#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rogatory::bench {

// What a run measured: every call's latency (not a sampled histogram) and the outcomes.
struct LatencySummary {
  int64_t calls = 0;  // calls started in the measurement window that ended
  int64_t ok = 0;
  int64_t errors = 0;   // calls that ended with another status than OK
  int64_t dropped = 0;  // open loop: calls not started because too many were outstanding
  std::map<std::string, int64_t> errors_by_code;  // "UNAVAILABLE" -> count
  absl::Duration window;                          // the measurement window
  double throughput = 0;                          // successful calls per second
  // Latency of successful calls, nearest-rank percentiles.
  absl::Duration p50, p90, p99, p999, max, mean;
};

// Collects the latency of every call from any thread.
class LatencyRecorder {
 public:
  void RecordOk(absl::Duration latency);
  void RecordError(const std::string& code);
  void RecordDropped();
  // Sorts what was recorded; `window` is the time the recorded calls were started over.
  LatencySummary Summarize(absl::Duration window) const;

 private:
  mutable absl::Mutex mu_;
  std::vector<int64_t> nanos_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> errors_ ABSL_GUARDED_BY(mu_);
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// The nearest-rank percentile `q` (0 < q <= 1) of sorted values; 0 when empty.
int64_t Percentile(const std::vector<int64_t>& sorted, double q);

}  // namespace rogatory::bench
