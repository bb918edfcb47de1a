#pragma once

#include <functional>

#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "latency.h"

namespace rogatory::bench {

// One kind of call the generator makes. Start begins one asynchronous call and calls `done`
// exactly once, on any thread, with its status. Start must not block.
class CallSource {
 public:
  virtual ~CallSource() = default;
  virtual void Start(std::function<void(const grpc::Status&)> done) = 0;
};

struct LoadOptions {
  enum class Mode {
    kClosed,  // `concurrency` calls in flight at all times: measures the peak rate
    kOpen,    // calls started at `rate` per second whatever the answers: measures latency
  };
  Mode mode = Mode::kClosed;
  int concurrency = 16;
  double rate = 100;
  // Calls started during the warm-up are made but not recorded.
  absl::Duration warmup = absl::Seconds(2);
  // The measurement window, after the warm-up.
  absl::Duration duration = absl::Seconds(10);
  // Open loop: beyond this many calls in flight new ones are not started but counted as
  // dropped (a server that cannot keep up shows as drops, not as a slower generator).
  int max_outstanding = 20000;
  // How long to wait after the window for calls still in flight.
  absl::Duration drain_timeout = absl::Seconds(15);
};

// Drives `source` as `options` say and returns what the measurement window recorded.
// Latency is measured from the moment a call was due (open loop: its scheduled start, so a
// stalled server is not hidden by the generator waiting: no coordinated omission) to its
// answer.
LatencySummary RunLoad(const LoadOptions& options, CallSource& source);

}  // namespace rogatory::bench
