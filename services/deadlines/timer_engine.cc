#include "timer_engine.h"

#include <algorithm>
#include <map>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "deadline_logic.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/pubsub_listener.h"
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

TimerScheduledPublisher::TimerScheduledPublisher(common::RedisClient& redis,
                                                 const common::Clock& clock, absl::Duration horizon)
    : redis_(redis), clock_(clock), horizon_(horizon), id_(common::NewTraceId().substr(0, 16)) {}

void TimerScheduledPublisher::Publish(int shard, absl::Time due) {
  if (due > clock_.Now() + horizon_) return;  // the engines' next look finds it
  redis_.Command({"PUBLISH", kTimerScheduledChannel,
                  absl::StrCat(shard, " ", absl::ToUnixMillis(due), " ", id_)},
                 [](absl::StatusOr<common::RedisReply>) {});
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
  // A test clock moved: whatever the loop sleeps until may have come.
  clock_observer_ = clock_.AddMoveObserver([this] {
    absl::MutexLock lock(&wake_mu_);
    woken_ = true;
  });
  if (options_.pubsub.has_value()) {
    common::PubSubListener::Callbacks callbacks;
    callbacks.on_message = [this](const std::string& payload) { OnMessage(payload); };
    // Messages published while the subscription was down are lost: look again.
    callbacks.on_subscribed = [this] {
      absl::MutexLock lock(&wake_mu_);
      woken_ = true;
    };
    listener_ = std::make_unique<common::PubSubListener>(*options_.pubsub, kTimerScheduledChannel,
                                                         std::move(callbacks));
  }
  thread_ = std::thread([this] { Loop(); });
}

std::string TimerEngine::LeaseKey() {
  return absl::StrCat(common::Sharding::Prefix(0), "dl:timer-lease");
}

void TimerEngine::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  {
    absl::MutexLock lock(&wake_mu_);
    stopping_ = true;
  }
  listener_.reset();  // no message after this
  if (clock_observer_ != 0) {
    clock_.RemoveMoveObserver(clock_observer_);
    clock_observer_ = 0;
  }
  if (thread_.joinable()) {
    thread_.join();
    // Hand the lease over at once (renewed for a millisecond: the lease script only ever
    // touches its own holder's value), so that another replica, or this one restarted,
    // need not wait for it to run out.
    if (holder_.exchange(false)) {
      common::HoldReplicaLease(redis_, LeaseKey(), lease_owner_, absl::Milliseconds(1));
    }
  }
}

int TimerEngine::subscriptions() const {
  return listener_ == nullptr ? 0 : listener_->subscriptions();
}

void TimerEngine::Scheduled(int shard, absl::Time due) {
  (void)shard;  // one loop for every shard
  absl::MutexLock lock(&wake_mu_);
  if (due < wake_at_) woken_ = true;
}

// "<shard> <due ms> <publisher id>"; this process's own are ignored (its store called
// Scheduled already).
void TimerEngine::OnMessage(const std::string& payload) {
  std::vector<absl::string_view> parts = absl::StrSplit(payload, ' ');
  if (parts.size() != 3) return;
  if (!options_.own_publisher.empty() && parts[2] == options_.own_publisher) return;
  int shard = 0;
  int64_t due_ms = 0;
  if (!absl::SimpleAtoi(parts[0], &shard) || !absl::SimpleAtoi(parts[1], &due_ms)) return;
  Scheduled(shard, absl::FromUnixMillis(due_ms));
}

std::optional<absl::Time> TimerEngine::NextDue() {
  absl::Time earliest = absl::InfiniteFuture();
  for (int shard = 0; shard < store_.sharding().shard_count(); ++shard) {
    auto next = store_.NextDue(shard);
    if (!next.ok()) return std::nullopt;
    if (next->has_value() && **next < earliest) earliest = **next;
  }
  return earliest;
}

void TimerEngine::SleepUntil(absl::Time until, absl::Duration at_most) {
  sleeps_.fetch_add(1);
  absl::MutexLock lock(&wake_mu_);
  wake_at_ = until;
  // Real time to wait: a clock that runs gets there by itself; a test clock that is moved
  // wakes the loop through its observer.
  const absl::Duration wait = std::clamp(until - clock_.Now(), absl::ZeroDuration(), at_most);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) { return stopping_ || woken_; };
  wake_mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
}

void TimerEngine::Loop() {
  const std::string lease_key = LeaseKey();
  const absl::Duration net = options_.recheck_interval;
  common::MonotonicTime next_gauges = common::MonotonicTime::InfinitePast();
  common::MonotonicTime next_lease = common::MonotonicTime::InfinitePast();
  bool holder = false;
  bool busy = false;  // the last pass fired or dropped timers
  while (!stop_.HasBeenNotified()) {
    // Elapsed time, on purpose: the lease and the gauges are about this process, and a test
    // clock moved ahead (wall time) must not change how often they are refreshed.
    if (clock_.MonotonicNow() >= next_lease) {
      const bool was = holder;
      holder = common::HoldReplicaLease(redis_, lease_key, lease_owner_, net * 3);
      holder_.store(holder);
      next_lease = clock_.MonotonicNow() + net;
      if (holder != was) {
        Log::Info(holder ? "timer engine lease taken" : "timer engine lease held elsewhere",
                  {{"owner", options_.owner}});
        if (!holder && metrics_ != nullptr) ClearGauges();
        if (holder) next_gauges = common::MonotonicTime::InfinitePast();
      }
    }
    if (!holder) {
      // Touch nothing but the lease, which is retried at the safety-net cadence.
      {
        absl::MutexLock lock(&wake_mu_);
        woken_ = false;
      }
      SleepUntil(absl::InfiniteFuture(), net);
      continue;
    }
    {
      // From here on, a timer scheduled (or a clock move) wakes the loop again.
      absl::MutexLock lock(&wake_mu_);
      wake_at_ = absl::InfiniteFuture();
      woken_ = false;
    }
    if (metrics_ != nullptr && clock_.MonotonicNow() >= next_gauges) {
      UpdateGauges();
      next_gauges = clock_.MonotonicNow() + options_.gauge_interval;
    }
    // Busy (the last pass fired timers): claim again at once, as a backlog or a steady
    // stream of timers wants; reading the next due time first would only add round trips.
    if (busy) {
      busy = RunOnce() > 0;
      if (busy) continue;
    }
    // When the next timer (or an abandoned claim) is due: one ZRANGE of the timers and one
    // of the claims per shard. Only then the claims, which cost a script per shard.
    std::optional<absl::Time> next = NextDue();
    if (next.has_value() && *next <= clock_.Now()) {
      busy = RunOnce() > 0;
      if (busy) continue;
      // Nothing claimable after all (a timer the same millisecond): look again in a
      // moment rather than spin.
      next = clock_.Now() + absl::Milliseconds(10);
    }
    // Unknown (Redis failing): look again after a short rest, at most the safety net.
    const absl::Time until = next.has_value() ? *next : clock_.Now() + absl::Seconds(1);
    // The lease wants renewing and the gauges refreshing within the safety net too.
    absl::Duration at_most = net;
    if (metrics_ != nullptr) {
      at_most = std::min(at_most, next_gauges - clock_.MonotonicNow());
    }
    SleepUntil(until, std::max(at_most, absl::Milliseconds(1)));
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

void TimerEngine::ClearGauges() {
  next_due_soon_ = common::MonotonicTime::InfinitePast();
  for (auto& [name, gauge] : gauges_) metrics_->pending->Remove(gauge);
  gauges_.clear();
  metrics_->overdue->Set(0);
  metrics_->due_24h->Set(0);
  metrics_->due_7d->Set(0);
}

// By the engine's lease holder only (other replicas export zeros): one HGETALL and two
// ZCOUNTs (O(log N)) per shard every gauge interval.
void TimerEngine::UpdateGauges() {
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
  // Due soon: what an operator plans for (2 ZCOUNTs per shard, by the lease holder only),
  // over windows of a day and a week: refreshed every due_soon_interval.
  if (clock_.MonotonicNow() < next_due_soon_) return;
  next_due_soon_ = clock_.MonotonicNow() + options_.due_soon_interval;
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
