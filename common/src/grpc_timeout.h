#pragma once

#include "absl/time/time.h"
#include "grpc/support/time.h"

namespace rogatory::common::internal {

// A gRPC deadline `d` from now, measured by gRPC's own clock: a relative timespan (gRPC adds
// it to its monotonic clock when the call starts), so it never depends on wall time or on
// the service clock (which a test clock may have moved ahead). For
// ClientContext::set_deadline and Server::Shutdown.
inline gpr_timespec GrpcTimeout(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return gpr_inf_past(GPR_CLOCK_MONOTONIC);  // at once
  return gpr_time_from_nanos(absl::ToInt64Nanoseconds(d), GPR_TIMESPAN);
}

}  // namespace rogatory::common::internal
