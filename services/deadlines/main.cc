// rogatory-deadlines: legal time limits as durable timers in Redis, with calendars,
// reminders and escalations. Starts, settles and cancels deadlines from intake's events;
// emits deadline events through its outbox.
#include "deadline_logic.h"
#include "deadline_service.h"
#include "redis_deadline_store.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/platform.h"
#include "rules.h"
#include "timer_engine.h"
#include "topology.h"

#ifndef ROGATORY_DEADLINES_DATA_DIR
#define ROGATORY_DEADLINES_DATA_DIR "services/deadlines/data"
#endif

int main(int argc, char** argv) {
  using rogatory::common::Platform;
  using rogatory::common::ServiceParts;
  namespace dl = rogatory::deadlines;
  const rogatory::common::ServiceIdentity identity = rogatory::topology::Deadlines();
  std::string rules_dir;
  absl::Duration timer_lease, timer_recheck_interval;
  int timer_batch = 200;
  return rogatory::common::ServiceMain(
      identity, argc, argv,
      [&](rogatory::common::Config& config) {
        config.AddString("rules-dir", ROGATORY_DEADLINES_DATA_DIR,
                         "Folder with rules.json and calendars.json (reloaded on SIGHUP and "
                         "when the folder changes).",
                         &rules_dir);
        config.AddDuration("timer-lease", absl::Seconds(10), absl::Seconds(1), absl::Minutes(10),
                           "Lease of a claimed timer: another replica fires it after this if "
                           "the claimant died.",
                           &timer_lease);
        config.AddDuration(
            "timer-recheck-interval", absl::Seconds(5), absl::Seconds(5), absl::Hours(1),
            "Safety net: the longest the timer engine sleeps without looking at Redis (it "
            "sleeps until the next due timer and is woken when an earlier one is scheduled, "
            "in this replica directly, in others through Redis pub/sub). Also how often a "
            "replica without the timer lease retries it.",
            &timer_recheck_interval);
        config.AddInt("timer-batch", 200, 1, 5000, "Timers claimed per shard at a time.",
                      &timer_batch);
      },
      [&](Platform& platform) -> absl::StatusOr<ServiceParts> {
        ServiceParts parts;
        auto initial = dl::RuleSet::Load(rules_dir);
        if (!initial.ok()) return initial.status();
        auto* registry = parts.Own(std::make_shared<dl::RulesRegistry>(rules_dir, *initial));
        rogatory::common::Log::Info("deadline rules loaded",
                                    {{"version", (*initial)->version()}, {"dir", rules_dir}});
        platform.reload_hooks().Add("deadline-rules", [registry] {
          absl::Status s = registry->Reload();
          if (s.ok()) {
            rogatory::common::Log::Info("deadline rules reloaded",
                                        {{"version", registry->Current()->version()}});
          }
          return s;
        });
        if (absl::Status s = platform.WatchDirectory(rules_dir); !s.ok()) return s;
        auto* store = parts.Own(
            std::make_shared<dl::RedisDeadlineStore>(platform.redis(), platform.sharding()));
        auto* tracker =
            parts.Own(std::make_shared<dl::DeadlineTracker>(*store, *registry, platform.clock()));
        parts.services.push_back(
            parts.Own(std::make_shared<dl::DeadlineService>(*tracker, platform.pipeline())));
        parts.event_handler = parts.Own(std::make_shared<dl::DeadlineEventHandler>(*tracker));
        parts.emits_events = true;
        // Lanes only to receivers that want one of these (issue 19).
        parts.emitted_events = dl::DeadlineEmittedEvents();
        auto* metrics =
            parts.Own(std::make_shared<dl::DeadlineMetrics>(platform.metrics().registry()));
        // Other replicas' engines hear of timers this one schedules through pub/sub.
        auto* publisher = parts.Own(std::make_shared<dl::TimerScheduledPublisher>(
            platform.redis(), platform.clock(), timer_recheck_interval));
        dl::TimerEngineOptions options;
        options.owner = identity.event_name;
        options.lease = timer_lease;
        options.recheck_interval = timer_recheck_interval;
        options.batch = timer_batch;
        if (auto url = rogatory::common::RedisUrlFromSettings(platform.settings()); url.ok()) {
          options.pubsub = *url;
        }
        options.own_publisher = publisher->id();
        auto* engine = parts.Own(std::make_shared<dl::TimerEngine>(
            *store, platform.redis(), platform.clock(), metrics, options));
        // This replica's engine directly.
        store->SetTimerScheduledHook([engine, publisher](int shard, absl::Time due) {
          engine->Scheduled(shard, due);
          publisher->Publish(shard, due);
        });
        engine->Start();
        parts.on_drain.push_back([store, engine] {
          store->SetTimerScheduledHook(nullptr);
          engine->Stop();
        });
        return parts;
      });
}
