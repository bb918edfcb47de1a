#include "latency.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace rogatory::bench {

void LatencyRecorder::RecordOk(absl::Duration latency) {
  absl::MutexLock lock(&mu_);
  nanos_.push_back(absl::ToInt64Nanoseconds(latency));
}

void LatencyRecorder::RecordError(const std::string& code) {
  absl::MutexLock lock(&mu_);
  ++errors_[code];
}

void LatencyRecorder::RecordDropped() {
  absl::MutexLock lock(&mu_);
  ++dropped_;
}

int64_t Percentile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  const size_t index = static_cast<size_t>(std::max(1.0, rank)) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

LatencySummary LatencyRecorder::Summarize(absl::Duration window) const {
  std::vector<int64_t> sorted;
  LatencySummary s;
  {
    absl::MutexLock lock(&mu_);
    sorted = nanos_;
    s.errors_by_code = errors_;
    s.dropped = dropped_;
  }
  std::sort(sorted.begin(), sorted.end());
  s.ok = static_cast<int64_t>(sorted.size());
  for (const auto& [code, n] : s.errors_by_code) s.errors += n;
  s.calls = s.ok + s.errors;
  s.window = window;
  const double seconds = absl::ToDoubleSeconds(window);
  s.throughput = seconds > 0 ? static_cast<double>(s.ok) / seconds : 0;
  auto at = [&sorted](double q) { return absl::Nanoseconds(Percentile(sorted, q)); };
  s.p50 = at(0.50);
  s.p90 = at(0.90);
  s.p99 = at(0.99);
  s.p999 = at(0.999);
  s.max = sorted.empty() ? absl::ZeroDuration() : absl::Nanoseconds(sorted.back());
  if (!sorted.empty()) {
    const long double total = std::accumulate(sorted.begin(), sorted.end(), 0.0L);
    s.mean = absl::Nanoseconds(static_cast<int64_t>(total / sorted.size()));
  }
  return s;
}

}  // namespace rogatory::bench
