#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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
#include "rogatory/common/redis.h"

namespace rogatory::common {
class PubSubListener;
}  // namespace rogatory::common

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
  // The safety net (timer-recheck-interval): the longest the loop sleeps without looking at
  // Redis, whatever it was told. It sleeps until the next due instant (the earliest timer
  // or claim expiry of every shard), and wakes earlier when a timer is scheduled before it
  // (Scheduled, or a message on the pub/sub channel) or the clock is moved (a test clock).
  // A replica without the engine's lease retries it at this cadence; the lease lasts three
  // of them.
  absl::Duration recheck_interval = absl::Seconds(5);
  int batch = 200;
  // How often the lease holder recomputes the pending, overdue and due-soon gauges.
  absl::Duration gauge_interval = absl::Seconds(5);
  // How often the lease holder recounts the due-soon gauges (rogatory_deadlines_due: open
  // deadlines due within 24 h and 7 d, two ZCOUNTs per shard), at least gauge_interval.
  absl::Duration due_soon_interval = absl::Minutes(1);
  // Redis to SUBSCRIBE to kTimerScheduledChannel on, to hear of timers other replicas
  // schedule; unset: none (their timers wait for the safety net unless due after it).
  std::optional<common::RedisUrl> pubsub;
  // This process's TimerScheduledPublisher id: its own messages are ignored (its store
  // calls Scheduled directly).
  std::string own_publisher;
  // Optional observer, called once per timer whose firing committed (its change and event
  // written), with the lateness of the commit: the clock's time when the commit succeeded
  // minus the timer's due time. For benchmarks (the prometheus histogram is too coarse for
  // a p99); it may run on any thread and must not block.
  std::function<void(absl::Duration lateness)> on_fired;
};

// Where stores PUBLISH "<shard> <due ms> <publisher id>" when they schedule a timer that
// may be due before the timer engines' next look (no personal data).
inline constexpr char kTimerScheduledChannel[] = "rg:deadlines:timer-scheduled";

// Tells the other replicas' timer engines that a timer was scheduled: PUBLISHes on
// kTimerScheduledChannel (one command, not waited for), only when the timer falls due
// within `horizon` (set it to the engines' recheck interval): an engine looks at Redis at
// least that often, so a later timer is found by its next look anyway. Thread-safe.
class TimerScheduledPublisher {
 public:
  TimerScheduledPublisher(common::RedisClient& redis, const common::Clock& clock,
                          absl::Duration horizon);
  void Publish(int shard, absl::Time due);
  // A random id, in every message (the engine of this process ignores them).
  const std::string& id() const { return id_; }

 private:
  common::RedisClient& redis_;
  const common::Clock& clock_;
  const absl::Duration horizon_;
  const std::string id_;
};

// Fires due timers of every shard: claims them atomically (lease + fencing token), applies
// each to its deadline and writes the change with its event in one fenced script. Any
// number of engines may run on one Redis; each timer fires once; a claim whose engine died
// is taken over when its lease runs out. Time comes from the injected clock.
//
// Started, an engine works only while it holds the engines' lease (rg:{s0}:dl:timer-lease,
// one replica at a time; a second holder for a moment is harmless, claims are fenced). The
// holder fires what is due, reads when the next timer falls due and sleeps until then (at
// most the recheck interval); a replica without the lease touches nothing but the lease.
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

  // A timer of `shard` was scheduled for `due`: wakes the loop if it sleeps until later.
  // Thread-safe, never blocks on Redis (a store's TimerScheduledHook).
  void Scheduled(int shard, absl::Time due);

  // One pass over every shard, firing what is due now; returns how many timers it handled
  // (fired or found stale). For tests and the loop.
  int RunOnce();

  // Test hook, to play a replica that dies after claiming: claims up to `limit` due timers
  // of `shard` and never fires or releases them.
  int ClaimAndAbandonForTest(int shard, int limit);

  // Recomputes the gauges (the lease holder's loop calls it).
  void UpdateGauges();

  // For tests: how many times the loop went to sleep; whether it holds the lease; how many
  // times its pub/sub subscription was confirmed.
  int64_t sleeps() const { return sleeps_.load(); }
  bool holds_lease() const { return holder_.load(); }
  int subscriptions() const;

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
  // Clears the gauges without touching Redis (a replica without the lease exports zeros).
  void ClearGauges();
  // When the next timer of any shard is due; InfiniteFuture if none; nullopt on error.
  std::optional<absl::Time> NextDue();
  // Sleeps (real time) until the clock reads `until`, at most `at_most`, unless woken.
  void SleepUntil(absl::Time until, absl::Duration at_most);
  void OnMessage(const std::string& payload);
  static std::string LeaseKey();  // rg:{s0}:dl:timer-lease

  DeadlineStore& store_;
  common::RedisClient& redis_;
  const common::Clock& clock_;
  DeadlineMetrics* metrics_;
  const TimerEngineOptions options_;
  const std::string lease_owner_;
  std::thread thread_;
  absl::Notification stop_;
  // The loop's sleep: the wall-clock instant it sleeps until, and whether it was woken.
  absl::Mutex wake_mu_;
  absl::Time wake_at_ ABSL_GUARDED_BY(wake_mu_) = absl::InfiniteFuture();
  bool woken_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(wake_mu_) = false;
  uint64_t clock_observer_ = 0;
  std::unique_ptr<common::PubSubListener> listener_;
  std::atomic<int64_t> sleeps_{0};
  std::atomic<bool> holder_{false};
  std::map<std::string, prometheus::Gauge*> gauges_;
  common::MonotonicTime next_due_soon_ = common::MonotonicTime::InfinitePast();
  std::atomic<bool> claim_failing_{false};
};

}  // namespace rogatory::deadlines
