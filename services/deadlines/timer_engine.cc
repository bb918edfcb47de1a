#include "timer_engine.h"

#include <map>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "deadline_logic.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/replica_lease.h"

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
                  .Add({}, prometheus::Histogram::BucketBoundaries{0.05, 0.1, 0.25, 0.5, 1, 2, 5,
                                                                   10, 30, 60, 300});
  pending = &prometheus::BuildGauge()
                 .Name("rogatory_deadlines_pending")
                 .Help(
                     "Open deadlines (running, suspended, overdue) by instrument; exported "
                     "by one replica only (the gauge lease holder).")
                 .Register(registry);
  overdue = &prometheus::BuildGauge()
                 .Name("rogatory_deadlines_overdue")
                 .Help("Overdue deadlines; exported by the gauge lease holder only (others 0).")
                 .Register(registry)
                 .Add({});
  auto& due = prometheus::BuildGauge()
                  .Name("rogatory_deadlines_due")
                  .Help(
                      "Open deadlines not yet overdue that fall due within the next 24 hours "
                      "or 7 days; exported by the gauge lease holder only (others 0).")
                  .Register(registry);
  due_24h = &due.Add({{"within", "24h"}});
  due_7d = &due.Add({{"within", "7d"}});
}

TimerEngine::TimerEngine(DeadlineStore& store, common::RedisClient& redis,
                         const common::Clock& clock, DeadlineMetrics* metrics,
                         TimerEngineOptions options)
    : store_(store),
      redis_(redis),
      clock_(clock),
      metrics_(metrics),
      options_(std::move(options)),
      lease_owner_(absl::StrCat(options_.owner, "-", common::NewUlid(clock.Now()))) {}

TimerEngine::~TimerEngine() { Stop(); }

void TimerEngine::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void TimerEngine::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void TimerEngine::Loop() {
  common::MonotonicTime next_gauges = common::MonotonicTime::InfinitePast();
  while (!stop_.HasBeenNotified()) {
    int handled = RunOnce();
    // Elapsed time, on purpose: the gauges are about this process, and a test clock moved
    // ahead (wall time) must not change how often they are refreshed.
    if (metrics_ != nullptr && clock_.MonotonicNow() >= next_gauges) {
      UpdateGauges();
      next_gauges = clock_.MonotonicNow() + options_.gauge_interval;
    }
    if (handled == 0) stop_.WaitForNotificationWithTimeout(options_.poll_interval);
  }
}

int TimerEngine::RunOnce() {
  int handled = 0;
  const int shards = store_.sharding().shard_count();
  for (int shard = 0; shard < shards && !stop_.HasBeenNotified(); ++shard) {
    // Drain the shard's due timers in batches (at most 50 a pass, so one shard's backlog
    // does not starve the others).
    for (int round = 0; round < 50; ++round) {
      const absl::Time now = clock_.Now();
      auto claimed = store_.Claim(shard, now, options_.lease, options_.batch);
      if (!claimed.ok()) {
        // Logged once per outage, not once per poll.
        if (!claim_failing_.exchange(true)) {
          Log::Warn("timer claims failing; retrying",
                    {{"shard", absl::StrCat(shard)}, {"error", claimed.status().ToString()}});
        }
        break;
      }
      if (claim_failing_.exchange(false)) Log::Info("timer claims work again");
      // A fire schedules the deadline's next timer (the store keeps one a deadline), which
      // may be due already (reminders that came due together, a backlog): claim again until
      // the shard has nothing due.
      if (claimed->empty()) break;
      handled += FireBatch(shard, *std::move(claimed), now);
    }
  }
  return handled;
}

int TimerEngine::ClaimAndAbandonForTest(int shard, int limit) {
  auto claimed = store_.Claim(shard, clock_.Now(), options_.lease, limit);
  return claimed.ok() ? static_cast<int>(claimed->size()) : 0;
}

namespace {
// Commits of one timer that meet a changed deadline before giving up (the claim stays, so
// the timer is retried after its lease).
constexpr int kMaxAttempts = 5;
}  // namespace

// A claimed batch being fired: the chains not finished yet and what they handled.
struct TimerEngine::Batch {
  absl::Mutex mu;
  size_t chains_left ABSL_GUARDED_BY(mu) = 0;
  int handled ABSL_GUARDED_BY(mu) = 0;
};

// The timers of one deadline in a batch, fired one after the other in claim order (by due
// time), each on the deadline as the previous commit left it. Only one operation of a chain
// is in flight at a time, so its fields need no lock: each step hands the chain over to the
// next through the Redis client's queue.
struct TimerEngine::Chain {
  int shard = 0;
  absl::Time now;
  std::string deadline_id;
  std::shared_ptr<Batch> batch;
  std::vector<ClaimedTimer> timers;
  size_t next = 0;  // the timer being fired
  int attempt = 0;
  int handled = 0;
  // The deadline as the claim read it, then as the last commit or re-read left it; unset
  // when it is gone.
  std::optional<StoredDeadline> deadline;
  // Of the commit in flight: its event type, whether it writes, and (when another timer of
  // the chain follows) the deadline it writes.
  common::v1::EventType type = common::v1::EVENT_TYPE_UNSPECIFIED;
  bool writes = false;
  std::optional<StoredDeadline> written;
};

int TimerEngine::FireBatch(int shard, std::vector<ClaimedTimer> timers, absl::Time now) {
  auto batch = std::make_shared<Batch>();
  std::vector<std::shared_ptr<Chain>> chains;
  std::map<std::string, size_t> chain_of;  // deadline id -> index in chains
  for (ClaimedTimer& t : timers) {
    if (t.takeover && metrics_ != nullptr) metrics_->takeovers->Increment();
    std::string id = t.member.substr(0, t.member.find('|'));
    auto [it, inserted] = chain_of.emplace(id, chains.size());
    if (inserted) {
      auto c = std::make_shared<Chain>();
      c->shard = shard;
      c->now = now;
      c->deadline_id = std::move(id);
      c->batch = batch;
      // The claim script read the deadline once for all its timers in this batch.
      c->deadline = std::move(t.deadline);
      chains.push_back(std::move(c));
    }
    chains[it->second]->timers.push_back(std::move(t));
  }
  {
    absl::MutexLock lock(&batch->mu);
    batch->chains_left = chains.size();
  }
  for (auto& c : chains) Step(std::move(c));
  absl::MutexLock lock(&batch->mu);
  batch->mu.Await(absl::Condition(
      +[](Batch* b) { return b->chains_left == 0; }, batch.get()));
  return batch->handled;
}

void TimerEngine::Step(std::shared_ptr<Chain> c) {
  if (c->next >= c->timers.size()) {
    absl::MutexLock lock(&c->batch->mu);
    c->batch->handled += c->handled;
    --c->batch->chains_left;
    return;
  }
  const ClaimedTimer& timer = c->timers[c->next];
  const auto bar = timer.member.find('|');
  const std::string what = bar == std::string::npos ? "" : timer.member.substr(bar + 1);
  CommitOptions options;
  options.claim_member = timer.member;
  options.claim_token = timer.token;
  std::vector<DeadlineWrite> writes;
  c->type = common::v1::EVENT_TYPE_UNSPECIFIED;
  c->writes = false;
  c->written.reset();
  if (c->deadline) {
    DeadlineWrite w{c->deadline->deadline, c->deadline->version, std::nullopt,
                    IndexedAuthority(c->deadline->deadline)};
    FireResult r = Fire(w.deadline, what, c->now);
    c->type = r.event_type;
    if (r.changed) {
      if (r.event_type != common::v1::EVENT_TYPE_UNSPECIFIED) {
        w.event = ChangeEvent(w.deadline, r.event_type, c->now,
                              TimerEventId(timer.member, c->deadline->version, timer.due), "");
      }
      c->writes = true;
      if (c->next + 1 < c->timers.size()) {
        c->written = StoredDeadline{w.deadline, c->deadline->version + 1, false};
      }
      writes.push_back(std::move(w));
    }
  }
  // No write: a stale timer; the commit only releases the claim.
  store_.Commit(
      c->shard, std::move(writes), options,
      [this, c](absl::StatusOr<CommitOutcome> outcome) { OnCommitted(c, std::move(outcome)); });
}

void TimerEngine::OnCommitted(std::shared_ptr<Chain> c, absl::StatusOr<CommitOutcome> outcome) {
  const ClaimedTimer& timer = c->timers[c->next];
  const std::string shard = absl::StrCat(c->shard);
  if (!outcome.ok()) {
    Log::Warn("timer commit failed; the claim is retried after its lease",
              {{"shard", shard}, {"error", outcome.status().ToString()}});
    return NextTimer(std::move(c), false);
  }
  if (*outcome == CommitOutcome::kConflict) {
    if (++c->attempt >= kMaxAttempts) return NextTimer(std::move(c), false);
    // The deadline changed since it was read: read it again, then retry this timer.
    const std::string id = c->deadline_id;
    store_.Get(id, [this, c, shard](absl::StatusOr<StoredDeadline> fresh) {
      if (fresh.ok()) {
        c->deadline = *std::move(fresh);
      } else if (absl::IsNotFound(fresh.status())) {
        c->deadline.reset();  // gone: the next commit only releases the claim
      } else {
        // Cannot tell (Redis timed out): keep the claim, which is taken over after its
        // lease; releasing it now would drop the timer.
        Log::Warn("timer re-read failed; the claim is retried after its lease",
                  {{"shard", shard}, {"error", fresh.status().ToString()}});
        return NextTimer(c, false);
      }
      Step(c);
    });
    return;
  }
  // Fenced: another claimant holds it, or a change rescheduled it.
  if (*outcome != CommitOutcome::kOk) return NextTimer(std::move(c), false);
  if (c->writes) {
    if (options_.on_fired) options_.on_fired(clock_.Now() - timer.due);
    // The next timer of the chain applies to the deadline as this commit left it.
    if (c->written) c->deadline = std::move(c->written);
  }
  const common::v1::EventType type = c->type;
  if (metrics_ != nullptr) {
    metrics_->lateness->Observe(
        absl::ToDoubleSeconds(std::max(absl::ZeroDuration(), c->now - timer.due)));
    if (type == common::v1::EVENT_TYPE_DEADLINE_REMINDER) metrics_->reminders_fired->Increment();
    if (type == common::v1::EVENT_TYPE_DEADLINE_MISSED) metrics_->missed->Increment();
    if (type == common::v1::EVENT_TYPE_DEADLINE_ESCALATED) metrics_->escalated->Increment();
  }
  if ((type == common::v1::EVENT_TYPE_DEADLINE_MISSED ||
       type == common::v1::EVENT_TYPE_DEADLINE_ESCALATED) &&
      c->deadline) {
    Log::Info("deadline escalated", {{"deadline_id", c->deadline->deadline.id()},
                                     {"rule_id", c->deadline->deadline.rule_id()},
                                     {"trace_id", c->deadline->deadline.trace_id()}});
  }
  NextTimer(std::move(c), true);
}

void TimerEngine::NextTimer(std::shared_ptr<Chain> c, bool handled) {
  if (handled) ++c->handled;
  ++c->next;
  c->attempt = 0;
  Step(std::move(c));
}

void TimerEngine::UpdateGauges() {
  // The holder of the gauge lease (a key in shard 0) exports the shared counts.
  const bool holder =
      common::HoldReplicaLease(redis_, absl::StrCat(common::Sharding::Prefix(0), "dl:gauges-lease"),
                               lease_owner_, options_.gauge_interval * 3);
  if (!holder) {
    for (auto& [name, gauge] : gauges_) metrics_->pending->Remove(gauge);
    gauges_.clear();
    metrics_->overdue->Set(0);
    metrics_->due_24h->Set(0);
    metrics_->due_7d->Set(0);
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
  // Due soon: what an operator plans for (2 ZCOUNTs per shard, by the lease holder only).
  const absl::Time now = clock_.Now();
  int64_t due_24h = 0, due_7d = 0;
  for (int shard = 0; shard < store_.sharding().shard_count(); ++shard) {
    auto day = store_.CountOpenDue(shard, now, now + absl::Hours(24));
    auto week = store_.CountOpenDue(shard, now, now + absl::Hours(24 * 7));
    if (!day.ok() || !week.ok()) return;
    due_24h += *day;
    due_7d += *week;
  }
  metrics_->due_24h->Set(static_cast<double>(due_24h));
  metrics_->due_7d->Set(static_cast<double>(due_7d));
}

}  // namespace rogatory::deadlines
