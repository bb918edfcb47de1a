#include "timer_engine.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "deadline_logic.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/logging.h"

namespace rogatory::deadlines {

using common::Log;

DeadlineMetrics::DeadlineMetrics(prometheus::Registry& registry) {
  auto& fired = prometheus::BuildCounter()
                    .Name("rogatory_deadline_timers_fired_total")
                    .Help("Deadline timers fired by this replica, by what they did.")
                    .Register(registry);
  reminders_fired = &fired.Add({{"kind", "reminder"}});
  missed = &fired.Add({{"kind", "missed"}});
  escalated = &fired.Add({{"kind", "escalated"}});
  takeovers = &prometheus::BuildCounter()
                   .Name("rogatory_deadline_claim_takeovers_total")
                   .Help("Timer claims taken over after another replica's lease ran out.")
                   .Register(registry)
                   .Add({});
  lateness = &prometheus::BuildHistogram()
                  .Name("rogatory_deadline_firing_lateness_seconds")
                  .Help("How long after its due time a timer fired.")
                  .Register(registry)
                  .Add({}, prometheus::Histogram::BucketBoundaries{0.05, 0.1, 0.25, 0.5, 1, 2,
                                                                    5, 10, 30, 60, 300});
  pending = &prometheus::BuildGauge()
                 .Name("rogatory_deadlines_pending")
                 .Help("Open deadlines (running, suspended, overdue) by instrument; exported "
                       "by one replica only (the gauge lease holder).")
                 .Register(registry);
  overdue = &prometheus::BuildGauge()
                 .Name("rogatory_deadlines_overdue")
                 .Help("Overdue deadlines; exported by the gauge lease holder only (others 0).")
                 .Register(registry)
                 .Add({});
}

TimerEngine::TimerEngine(DeadlineStore& store, common::RedisClient& redis,
                         const common::Clock& clock, DeadlineMetrics* metrics,
                         TimerEngineOptions options)
    : store_(store),
      redis_(redis),
      clock_(clock),
      metrics_(metrics),
      options_(std::move(options)),
      lease_owner_(absl::StrCat(options_.owner, "-", common::NewUlid(absl::Now()))) {}

TimerEngine::~TimerEngine() { Stop(); }

void TimerEngine::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void TimerEngine::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void TimerEngine::Loop() {
  absl::Time next_gauges = absl::InfinitePast();
  while (!stop_.HasBeenNotified()) {
    int handled = RunOnce();
    // Real time, on purpose: the gauges are about this process, not about the test clock.
    if (metrics_ != nullptr && absl::Now() >= next_gauges) {  // NOLINT(clock)
      UpdateGauges();
      next_gauges = absl::Now() + options_.gauge_interval;
    }
    if (handled == 0) stop_.WaitForNotificationWithTimeout(options_.poll_interval);
  }
}

int TimerEngine::RunOnce() {
  int handled = 0;
  const int shards = store_.sharding().shard_count();
  for (int shard = 0; shard < shards && !stop_.HasBeenNotified(); ++shard) {
    // Drain the shard's due timers in batches.
    for (int round = 0; round < 50; ++round) {
      const absl::Time now = clock_.Now();
      auto claimed = store_.Claim(shard, now, options_.lease, options_.batch);
      if (!claimed.ok()) {
        // Logged once per outage, not once per poll.
        if (!claim_failing_.exchange(true)) {
          Log::Warn("timer claims failing; retrying", {{"shard", absl::StrCat(shard)},
                                                       {"error", claimed.status().ToString()}});
        }
        break;
      }
      if (claim_failing_.exchange(false)) Log::Info("timer claims work again");
      for (ClaimedTimer& t : *claimed) {
        if (Handle(shard, std::move(t), now)) ++handled;
      }
      if (static_cast<int>(claimed->size()) < options_.batch) break;
    }
  }
  return handled;
}

int TimerEngine::ClaimAndAbandonForTest(int shard, int limit) {
  auto claimed = store_.Claim(shard, clock_.Now(), options_.lease, limit);
  return claimed.ok() ? static_cast<int>(claimed->size()) : 0;
}

bool TimerEngine::Handle(int shard, ClaimedTimer timer, absl::Time now) {
  if (timer.takeover && metrics_ != nullptr) metrics_->takeovers->Increment();
  const auto bar = timer.member.find('|');
  const std::string what = bar == std::string::npos ? "" : timer.member.substr(bar + 1);
  CommitOptions options;
  options.claim_member = timer.member;
  options.claim_token = timer.token;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::vector<DeadlineWrite> writes;
    common::v1::EventType type = common::v1::EVENT_TYPE_UNSPECIFIED;
    if (timer.deadline) {
      DeadlineWrite w{timer.deadline->deadline, timer.deadline->version, std::nullopt};
      FireResult r = Fire(w.deadline, what, now);
      type = r.event_type;
      if (r.changed) {
        if (type != common::v1::EVENT_TYPE_UNSPECIFIED) {
          w.event = ChangeEvent(w.deadline, type, now,
                                TimerEventId(timer.member, timer.deadline->version, timer.due),
                                "");
        }
        writes.push_back(std::move(w));
      }
    }
    // No write: a stale timer; the commit only releases the claim.
    auto outcome = store_.CommitBlocking(shard, std::move(writes), options);
    if (!outcome.ok()) {
      Log::Warn("timer commit failed; the claim is retried after its lease",
                {{"shard", absl::StrCat(shard)}, {"error", outcome.status().ToString()}});
      return false;
    }
    if (*outcome == CommitOutcome::kConflict) {
      // The deadline changed since the claim read it: read it again.
      const std::string id = timer.member.substr(0, bar);
      auto fresh = store_.GetBlocking(id);
      if (fresh.ok()) {
        timer.deadline = *std::move(fresh);
      } else if (absl::IsNotFound(fresh.status())) {
        timer.deadline.reset();  // gone: the next commit only releases the claim
      } else {
        // Cannot tell (Redis timed out): keep the claim, which another replica takes
        // over after its lease; releasing it now would drop the timer.
        Log::Warn("timer re-read failed; the claim is retried after its lease",
                  {{"shard", absl::StrCat(shard)}, {"error", fresh.status().ToString()}});
        return false;
      }
      continue;
    }
    if (*outcome == CommitOutcome::kFenced) return false;  // another claimant or a reschedule
    if (metrics_ != nullptr) {
      metrics_->lateness->Observe(absl::ToDoubleSeconds(std::max(absl::ZeroDuration(), now - timer.due)));
      if (type == common::v1::EVENT_TYPE_DEADLINE_REMINDER) metrics_->reminders_fired->Increment();
      if (type == common::v1::EVENT_TYPE_DEADLINE_MISSED) metrics_->missed->Increment();
      if (type == common::v1::EVENT_TYPE_DEADLINE_ESCALATED) metrics_->escalated->Increment();
    }
    if (type == common::v1::EVENT_TYPE_DEADLINE_MISSED ||
        type == common::v1::EVENT_TYPE_DEADLINE_ESCALATED) {
      Log::Info("deadline escalated",
                {{"deadline_id", timer.deadline->deadline.id()},
                 {"rule_id", timer.deadline->deadline.rule_id()},
                 {"trace_id", timer.deadline->deadline.trace_id()}});
    }
    return true;
  }
  return false;
}

void TimerEngine::UpdateGauges() {
  // The holder of the gauge lease (a key in shard 0) exports the shared counts.
  const std::string key = DeadlineStore::Key(0, "gauges-lease");
  const std::string ttl = absl::StrCat(absl::ToInt64Milliseconds(options_.gauge_interval * 3));
  auto set = common::RunRedisCommand(redis_, {"SET", key, lease_owner_, "NX", "PX", ttl});
  bool holder = set.ok() && set->str == "OK";
  if (!holder) {
    auto owner = common::RunRedisCommand(redis_, {"GET", key});
    holder = owner.ok() && owner->str == lease_owner_;
    if (holder) common::RunRedisCommand(redis_, {"PEXPIRE", key, ttl}).IgnoreError();
  }
  if (!holder) {
    for (auto& [name, gauge] : gauges_) metrics_->pending->Remove(gauge);
    gauges_.clear();
    metrics_->overdue->Set(0);
    return;
  }
  std::map<std::string, int64_t> open;
  int64_t overdue = 0;
  for (int shard = 0; shard < store_.sharding().shard_count(); ++shard) {
    auto stats = store_.Stats(shard);
    if (!stats.ok()) return;
    for (const auto& [field, value] : *stats) {
      if (field == "overdue") {
        overdue += value;
      } else if (field.rfind("open:", 0) == 0) {
        int n = 0;
        if (absl::SimpleAtoi(field.substr(5), &n)) {
          open[common::v1::Instrument_Name(static_cast<common::v1::Instrument>(n))] += value;
        }
      }
    }
  }
  for (const auto& [name, count] : open) {
    auto& g = gauges_[name];
    if (g == nullptr) g = &metrics_->pending->Add({{"instrument", name}});
    g->Set(static_cast<double>(count));
  }
  metrics_->overdue->Set(static_cast<double>(overdue));
}

}  // namespace rogatory::deadlines
