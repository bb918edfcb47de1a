#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "deadline_store.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "rogatory/common/clock.h"

namespace rogatory::deadlines {

// The service's business metrics.
struct DeadlineMetrics {
  explicit DeadlineMetrics(prometheus::Registry& registry);
  prometheus::Counter* reminders_fired;
  prometheus::Counter* missed;
  prometheus::Counter* escalated;
  prometheus::Counter* takeovers;
  prometheus::Histogram* lateness;
  prometheus::Family<prometheus::Gauge>* pending;  // {instrument}
  prometheus::Gauge* overdue;
  prometheus::Gauge* due_24h;  // rogatory_deadlines_due{within="24h"}
  prometheus::Gauge* due_7d;   // rogatory_deadlines_due{within="7d"}
};

struct TimerEngineOptions {
  std::string owner = "replica";  // for logs
  absl::Duration lease = absl::Seconds(10);
  // How long the loop rests (real time) when no timer is due.
  absl::Duration poll_interval = absl::Milliseconds(200);
  int batch = 200;
  // How often the gauge lease holder recomputes the pending and overdue gauges.
  absl::Duration gauge_interval = absl::Seconds(5);
  // Optional observer, called once per timer whose firing committed (its change and event
  // written), with the lateness of the commit: the clock's time when the commit succeeded
  // minus the timer's due time. For benchmarks (the prometheus histogram is too coarse for
  // a p99); it may run on any thread and must not block.
  std::function<void(absl::Duration lateness)> on_fired;
};

// Fires due timers of every shard: claims them atomically (lease + fencing token), applies
// each to its deadline and writes the change with its event in one fenced script. Any
// number of engines may run on one Redis; each timer fires once; a claim whose engine died
// is taken over when its lease runs out. Time comes from the injected clock.
//
// A claimed batch fires concurrently: the timers of different deadlines are committed
// asynchronously, all in flight at once (pipelined on the connection), and the timers of
// one deadline in order, each applied to the deadline as the previous commit left it. So a
// batch costs about one round trip instead of one per timer.
class TimerEngine {
 public:
  TimerEngine(DeadlineStore& store, common::RedisClient& redis, const common::Clock& clock,
              DeadlineMetrics* metrics, TimerEngineOptions options);
  ~TimerEngine();

  // Runs the loop on its own thread until Stop.
  void Start();
  void Stop();

  // One pass over every shard, firing what is due now; returns how many timers it handled
  // (fired or found stale). For tests and the loop.
  int RunOnce();

  // Test hook, to play a replica that dies after claiming: claims up to `limit` due timers
  // of `shard` and never fires or releases them.
  int ClaimAndAbandonForTest(int shard, int limit);

  // Recomputes the gauges if this engine holds the gauge lease, else clears them (so that
  // replicas do not double count).
  void UpdateGauges();

 private:
  struct Batch;
  struct Chain;
  // Fires a claimed batch of one shard; returns when every timer of it is done (fired,
  // found stale, fenced, or left claimed for a retry after its lease); returns how many
  // fired or were found stale.
  int FireBatch(int shard, std::vector<ClaimedTimer> timers, absl::Time now);
  // Commits the chain's next timer (or finishes the chain); runs on the calling thread
  // first, then on the Redis client's thread from commit callbacks. Never blocks.
  void Step(std::shared_ptr<Chain> chain);
  void OnCommitted(std::shared_ptr<Chain> chain, absl::StatusOr<CommitOutcome> outcome);
  void NextTimer(std::shared_ptr<Chain> chain, bool handled);
  void Loop();

  DeadlineStore& store_;
  common::RedisClient& redis_;
  const common::Clock& clock_;
  DeadlineMetrics* metrics_;
  const TimerEngineOptions options_;
  const std::string lease_owner_;
  std::thread thread_;
  absl::Notification stop_;
  std::map<std::string, prometheus::Gauge*> gauges_;
  std::atomic<bool> claim_failing_{false};
};

}  // namespace rogatory::deadlines
