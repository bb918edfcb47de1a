#include "rogatory/common/backoff.h"

#include <algorithm>

namespace rogatory::common {

absl::Duration Backoff::Delay(int attempt, double u) const {
  absl::Duration d = initial;
  // Doubling stops at the cap, so a long outage's attempt count cannot overflow it.
  for (int i = 1; i < attempt && d < max; ++i) d *= 2;
  d = std::min(d, max);
  u = std::clamp(u, 0.0, 1.0);
  return d / 2 + d / 2 * u;
}

}  // namespace rogatory::common
