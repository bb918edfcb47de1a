#include "rogatory/common/log_summary.h"

namespace rogatory::common {

LogSummary::LogSummary(const Clock& clock, absl::Duration interval)
    : clock_(clock), interval_(interval) {}

int64_t LogSummary::Note(absl::string_view kind) {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  Kind& k = kinds_[kind];
  ++k.pending;
  if (now - k.last_line < interval_) return 0;
  k.last_line = now;
  const int64_t reported = k.pending;
  k.pending = 0;
  return reported;
}

int64_t LogSummary::pending(absl::string_view kind) const {
  absl::MutexLock lock(&mu_);
  auto it = kinds_.find(kind);
  return it == kinds_.end() ? 0 : it->second.pending;
}

}  // namespace rogatory::common
