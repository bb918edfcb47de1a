// Durable timers on a real redis-server: deadlines fire on time from the simulated clock,
// three engines fire each of 10,000 due timers exactly once even when one dies holding
// claims, a restart loses nothing, and with a real clock a due timer fires within a second.
#include "timer_engine.h"

#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "redis_commands.h"
#include "redis_fixture.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/metrics.h"

namespace rogatory::deadlines {
namespace {

using testing::DeadlinesRedisTest;
using testing::kShards;

TimerEngineOptions Options(const std::string& owner) {
  TimerEngineOptions o;
  o.owner = owner;
  o.lease = absl::Seconds(10);
  o.recheck_interval = absl::Milliseconds(20);
  o.batch = 100;
  return o;
}

class TimerEngineTest : public DeadlinesRedisTest {
 protected:
  // A deadline of shard `shard` whose only timer is its due time `due`.
  v1::Deadline OneTimerDeadline(const common::Clock& clock, int shard, absl::Time due) {
    v1::DeadlineRule rule = testing::Rule("EIO_PROVISIONAL_MEASURES");
    rule.clear_remind_before();
    rule.set_remind_at_half_time(false);
    StartInput in;
    in.deadline_id = common::Sharding::MakeId("dl", shard, clock.Now());
    in.request_id = common::Sharding::MakeId("rq", shard, clock.Now());
    in.rule = rule;
    in.rules_version = "test";
    in.trigger_time = clock.Now();
    in.shortened_due = due;
    return NewDeadline(in);
  }

  // Waits (real time, at most `give_up`) until `done` holds.
  static bool WaitFor(const std::function<bool()>& done, absl::Duration give_up) {
    common::RealClock real;
    const absl::Time until = real.Now() + give_up;
    while (!done()) {
      if (real.Now() > until) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

  // Options of an engine whose safety net (60 s) never comes within a test.
  static TimerEngineOptions Quiet(const std::string& owner) {
    TimerEngineOptions o = Options(owner);
    o.recheck_interval = absl::Seconds(60);
    o.gauge_interval = absl::Seconds(60);
    return o;
  }

  common::Metrics metrics_registry_;
  DeadlineMetrics metrics_{metrics_registry_.registry()};
};

TEST_F(TimerEngineTest, EawWithoutConsentFiresRemindersThenMissedAfterSixtyDaysThenEscalates) {
  auto d = StartDeadline(RequestId(1), "EAW_DECISION_NO_CONSENT");
  ASSERT_TRUE(d.ok()) << d.status();
  const absl::Time due = FromProtoTime(d->due_time());
  TimerEngine engine(*store_, *redis_, clock_, &metrics_, Options("a"));

  clock_.Set(due - absl::Seconds(1));
  engine.RunOnce();
  EXPECT_EQ(Get(d->id())->state(), v1::DEADLINE_STATE_RUNNING);
  // Reminders that came due together fire; none is late news after the due time.
  EXPECT_EQ(EventsOf(common::v1::EVENT_TYPE_DEADLINE_REMINDER).size(), 4u);
  EXPECT_TRUE(EventsOf(common::v1::EVENT_TYPE_DEADLINE_MISSED).empty());

  clock_.Set(due);
  EXPECT_EQ(engine.RunOnce(), 1);
  auto overdue = Get(d->id());
  EXPECT_EQ(overdue->state(), v1::DEADLINE_STATE_OVERDUE);
  auto missed = EventsOf(common::v1::EVENT_TYPE_DEADLINE_MISSED);
  ASSERT_EQ(missed.size(), 1u);
  EXPECT_EQ(missed[0].deadline().deadline_id(), d->id());
  EXPECT_EQ(missed[0].deadline().escalation_level(), 1);
  EXPECT_EQ(missed[0].deadline().escalate_to(), common::v1::AUTHORITY_ROLE_CENTRAL);
  EXPECT_EQ(FromProtoTime(missed[0].occur_time()), due);
  EXPECT_EQ(missed[0].event_id().size(), 26u);

  clock_.Set(due + absl::Hours(24));
  engine.RunOnce();
  auto escalated = EventsOf(common::v1::EVENT_TYPE_DEADLINE_ESCALATED);
  ASSERT_EQ(escalated.size(), 1u);
  EXPECT_EQ(escalated[0].deadline().escalation_level(), 2);
  EXPECT_EQ(Get(d->id())->state(), v1::DEADLINE_STATE_OVERDUE);  // never closed
  clock_.Advance(absl::Hours(24 * 365));
  EXPECT_EQ(engine.RunOnce(), 0);
  EXPECT_EQ(metrics_.missed->Value(), 1);
  EXPECT_EQ(metrics_.escalated->Value(), 1);
  EXPECT_EQ(metrics_.reminders_fired->Value(), 4);
}

TEST_F(TimerEngineTest, MetDeadlineNeverFires) {
  auto d = StartDeadline(RequestId(1), "EIO_PROVISIONAL_MEASURES");
  ASSERT_TRUE(d.ok());
  testing::Waiter<absl::StatusOr<v1::Deadline>> w;
  tracker_->Mutate(
      d->id(), "", "", [&](v1::Deadline& x) { return Complete(x, clock_.Now()); }, w.Callback());
  ASSERT_TRUE(w.Get().ok());
  TimerEngine engine(*store_, *redis_, clock_, &metrics_, Options("a"));
  clock_.Advance(absl::Hours(48));
  EXPECT_EQ(engine.RunOnce(), 0);
  EXPECT_TRUE(EventsOf(common::v1::EVENT_TYPE_DEADLINE_MISSED).empty());
}

// 10,000 deadlines whose only timer (the due time) is already due, spread over the shards.
void SeedDueDeadlines(DeadlineStore& store, absl::Time now, int count) {
  v1::DeadlineRule rule;
  rule.set_id("TEST_ONE_TIMER");
  rule.set_instrument(common::v1::INSTRUMENT_EIO);
  rule.set_unit(v1::PERIOD_UNIT_HOURS);
  rule.set_length(1);
  rule.set_kind(v1::DEADLINE_KIND_LIMIT);
  std::map<int, std::vector<DeadlineWrite>> batches;
  for (int i = 0; i < count; ++i) {
    const int shard = i % kShards;
    StartInput in;
    in.deadline_id = common::Sharding::MakeId("dl", shard, now);
    in.request_id = common::Sharding::MakeId("rq", shard, now);
    in.rule = rule;
    in.rules_version = "test";
    in.trigger_time = now - absl::Hours(2);
    in.instrument = common::v1::INSTRUMENT_EIO;
    auto& batch = batches[shard];
    batch.push_back({NewDeadline(in), 0, std::nullopt});
    if (batch.size() == 250) {
      ASSERT_EQ(*store.CommitBlocking(shard, std::move(batch), {}), CommitOutcome::kOk);
      batch.clear();
    }
  }
  for (auto& [shard, batch] : batches) {
    if (!batch.empty()) {
      ASSERT_EQ(*store.CommitBlocking(shard, std::move(batch), {}), CommitOutcome::kOk);
    }
  }
}

TEST_F(TimerEngineTest, ThreeReplicasFireEachOfTenThousandTimersExactlyOnceDespiteOneDying) {
  constexpr int kTimers = 10000;
  SeedDueDeadlines(*store_, clock_.Now(), kTimers);
  // Each replica has its own connection, as separate processes would.
  auto redis_a = testing::NewClient(server_), redis_b = testing::NewClient(server_),
       redis_c = testing::NewClient(server_);
  RedisDeadlineStore store_a(*redis_a, common::Sharding(kShards)),
      store_b(*redis_b, common::Sharding(kShards)), store_c(*redis_c, common::Sharding(kShards));
  common::Metrics ma, mb, mc;
  DeadlineMetrics metrics_a(ma.registry()), metrics_b(mb.registry()), metrics_c(mc.registry());
  TimerEngine a(store_a, *redis_a, clock_, &metrics_a, Options("a"));
  TimerEngine b(store_b, *redis_b, clock_, &metrics_b, Options("b"));
  TimerEngine c(store_c, *redis_c, clock_, &metrics_c, Options("c"));
  a.Start();
  b.Start();
  // Replica c claims timers in every shard and dies before firing them.
  int abandoned = 0;
  for (int s = 0; s < kShards; ++s) abandoned += c.ClaimAndAbandonForTest(s, 100);
  EXPECT_GT(abandoned, 0);
  c.Stop();

  auto missed_count = [&] {
    return static_cast<int>(metrics_a.missed->Value() + metrics_b.missed->Value());
  };
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (missed_count() < kTimers - abandoned && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(missed_count(), kTimers - abandoned);
  // The dead replica's claims are taken over once their lease runs out.
  clock_.Advance(absl::Seconds(11));
  while (missed_count() < kTimers && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
  a.Stop();
  b.Stop();
  EXPECT_EQ(missed_count(), kTimers);
  EXPECT_EQ(metrics_a.takeovers->Value() + metrics_b.takeovers->Value(), abandoned);

  auto missed = EventsOf(common::v1::EVENT_TYPE_DEADLINE_MISSED);
  std::set<std::string> deadlines, event_ids;
  for (const auto& e : missed) {
    deadlines.insert(e.deadline().deadline_id());
    event_ids.insert(e.event_id());
  }
  EXPECT_EQ(missed.size(), static_cast<size_t>(kTimers));
  EXPECT_EQ(deadlines.size(), static_cast<size_t>(kTimers));
  EXPECT_EQ(event_ids.size(), static_cast<size_t>(kTimers));
  for (int s = 0; s < kShards; ++s) {
    EXPECT_EQ(
        common::RunRedisCommand(*redis_, {"ZCARD", RedisDeadlineStore::Key(s, "timers")})->integer,
        0);
    EXPECT_EQ(
        common::RunRedisCommand(*redis_, {"ZCARD", RedisDeadlineStore::Key(s, "claims")})->integer,
        0);
  }
}

TEST_F(TimerEngineTest, RestartWithPendingDeadlinesFiresThemOnTime) {
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    auto d = StartDeadline(RequestId(i % kShards), "FREEZING_RECOGNITION_URGENT");
    ASSERT_TRUE(d.ok());
    ids.push_back(d->id());
  }
  const absl::Time due = clock_.Now() + absl::Hours(48);
  {
    TimerEngine engine(*store_, *redis_, clock_, &metrics_, Options("before"));
    clock_.Advance(absl::Hours(1));
    engine.RunOnce();
  }
  // The whole service goes down, Redis restarts from its append-only file, a new replica
  // comes up.
  redis_.reset();
  server_.Stop();
  server_.Start();
  redis_ = testing::NewClient(server_);
  store_ = std::make_unique<RedisDeadlineStore>(*redis_, common::Sharding(kShards));
  TimerEngine engine(*store_, *redis_, clock_, &metrics_, Options("after"));
  clock_.Set(due - absl::Seconds(1));
  engine.RunOnce();
  for (const auto& id : ids) EXPECT_EQ(Get(id)->state(), v1::DEADLINE_STATE_RUNNING);
  clock_.Set(due);
  engine.RunOnce();
  auto missed = EventsOf(common::v1::EVENT_TYPE_DEADLINE_MISSED);
  EXPECT_EQ(missed.size(), ids.size());
  for (const auto& e : missed) EXPECT_EQ(FromProtoTime(e.occur_time()), due);
  for (const auto& id : ids) EXPECT_EQ(Get(id)->state(), v1::DEADLINE_STATE_OVERDUE);
}

TEST_F(TimerEngineTest, DueTimeWithinAMillisecondIsNeitherFiredEarlyNorLost) {
  // A due time with a sub-millisecond part (an event's occur_time plus hours). A claim in
  // the same millisecond but before it must not take the timer (it would find nothing to
  // do yet, release it, and the deadline would never be missed).
  v1::DeadlineRule rule = testing::Rule("EIO_PROVISIONAL_MEASURES");
  rule.clear_remind_before();
  rule.set_remind_at_half_time(false);
  const absl::Time due = clock_.Now() + absl::Hours(1) + absl::Microseconds(500);
  StartInput in;
  in.deadline_id = common::Sharding::MakeId("dl", 1, clock_.Now());
  in.request_id = common::Sharding::MakeId("rq", 1, clock_.Now());
  in.rule = rule;
  in.rules_version = "test";
  in.trigger_time = clock_.Now();
  in.shortened_due = due;
  const v1::Deadline d = NewDeadline(in);
  ASSERT_EQ(FromProtoTime(d.due_time()), due);
  ASSERT_EQ(*store_->CommitBlocking(1, {{d, 0, std::nullopt}}, {}), CommitOutcome::kOk);
  TimerEngine engine(*store_, *redis_, clock_, &metrics_, Options("a"));

  clock_.Set(due - absl::Microseconds(300));  // same millisecond, before the due time
  engine.RunOnce();
  EXPECT_EQ(Get(d.id())->state(), v1::DEADLINE_STATE_RUNNING);
  clock_.Set(due + absl::Milliseconds(1));
  EXPECT_EQ(engine.RunOnce(), 1);
  EXPECT_EQ(Get(d.id())->state(), v1::DEADLINE_STATE_OVERDUE);
  EXPECT_EQ(EventsOf(common::v1::EVENT_TYPE_DEADLINE_MISSED).size(), 1u);
}

TEST_F(TimerEngineTest, BatchWithSeveralDueTimersOfOneDeadlineFiresThemInOrderOnce) {
  // Every reminder and the due time are due at once (a replica was down): one pass fires
  // them in order, each on the deadline as the previous left it, without conflicts lost.
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) {
    auto d = StartDeadline(RequestId(i % kShards), "EAW_DECISION_NO_CONSENT");
    ASSERT_TRUE(d.ok()) << d.status();
    ids.push_back(d->id());
  }
  absl::Time last_due = absl::InfinitePast();
  for (const auto& id : ids) last_due = std::max(last_due, FromProtoTime(Get(id)->due_time()));
  TimerEngine engine(*store_, *redis_, clock_, &metrics_, Options("a"));
  clock_.Set(last_due + absl::Minutes(1));
  engine.RunOnce();
  for (const auto& id : ids) {
    auto d = Get(id);
    EXPECT_EQ(d->state(), v1::DEADLINE_STATE_OVERDUE);
    for (const auto& r : d->reminders()) EXPECT_TRUE(r.fired());
  }
  // Reminders after the due time say nothing; the due time is missed once each.
  EXPECT_TRUE(EventsOf(common::v1::EVENT_TYPE_DEADLINE_REMINDER).empty());
  EXPECT_EQ(EventsOf(common::v1::EVENT_TYPE_DEADLINE_MISSED).size(), ids.size());
  EXPECT_EQ(engine.RunOnce(), 0);
  for (int s = 0; s < kShards; ++s) {
    EXPECT_EQ(
        common::RunRedisCommand(*redis_, {"ZCARD", RedisDeadlineStore::Key(s, "claims")})->integer,
        0);
  }
}

TEST_F(TimerEngineTest, WithRealClockDueTimerFiresWithinASecond) {
  common::RealClock real;
  v1::DeadlineRule rule = testing::Rule("EIO_PROVISIONAL_MEASURES");
  rule.clear_remind_before();
  StartInput in;
  in.deadline_id = common::Sharding::MakeId("dl", 2, real.Now());
  in.request_id = common::Sharding::MakeId("rq", 2, real.Now());
  in.rule = rule;
  in.rules_version = "test";
  in.trigger_time = real.Now();
  in.shortened_due = real.Now() + absl::Milliseconds(300);
  v1::Deadline d = NewDeadline(in);
  ASSERT_EQ(*store_->CommitBlocking(2, {{d, 0, std::nullopt}}, {}), CommitOutcome::kOk);
  TimerEngine engine(*store_, *redis_, real, &metrics_, [] {
    TimerEngineOptions o = Options("real");
    o.recheck_interval = absl::Seconds(5);  // the production default
    return o;
  }());
  engine.Start();
  const absl::Time give_up = real.Now() + absl::Seconds(5);
  while (metrics_.missed->Value() < 1 && real.Now() < give_up)
    absl::SleepFor(absl::Milliseconds(10));
  const absl::Time fired = real.Now();
  engine.Stop();
  ASSERT_EQ(metrics_.missed->Value(), 1);
  EXPECT_LT(fired - FromProtoTime(d.due_time()), absl::Seconds(1));
}

// Issue 19: the engine sleeps until the next due instant. Idle, with nothing due for an
// hour, it sends Redis almost nothing (the old loop claimed every 20 ms in each shard).
TEST_F(TimerEngineTest, IdleEngineWithNothingDueSendsRedisAlmostNothing) {
  const v1::Deadline d = OneTimerDeadline(clock_, 1, clock_.Now() + absl::Hours(1));
  ASSERT_EQ(*store_->CommitBlocking(1, {{d, 0, std::nullopt}}, {}), CommitOutcome::kOk);
  TimerEngine engine(*store_, *redis_, clock_, &metrics_, Quiet("idle"));
  engine.Start();
  ASSERT_TRUE(WaitFor([&] { return engine.sleeps() >= 1; }, absl::Seconds(10)));
  rogatory::testing::CommandCounter counter(*redis_);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const int64_t commands = counter.Total();
  engine.Stop();
  EXPECT_LE(commands, 3);
  EXPECT_EQ(Get(d.id())->state(), v1::DEADLINE_STATE_RUNNING);
}

// A replica that does not hold the engine's lease leaves the timers alone: it only retries
// the lease at the safety-net cadence.
TEST_F(TimerEngineTest, ReplicaWithoutTheLeaseNeitherClaimsNorReads) {
  auto redis_b = testing::NewClient(server_);
  RedisDeadlineStore store_b(*redis_b, common::Sharding(kShards));
  TimerEngine a(*store_, *redis_, clock_, &metrics_, Quiet("a"));
  TimerEngine b(store_b, *redis_b, clock_, nullptr, Quiet("b"));
  a.Start();
  ASSERT_TRUE(WaitFor([&] { return a.sleeps() >= 1; }, absl::Seconds(10)));
  b.Start();
  ASSERT_TRUE(WaitFor([&] { return b.sleeps() >= 1; }, absl::Seconds(10)));
  rogatory::testing::CommandCounter counter(*redis_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int64_t commands = counter.Total();
  EXPECT_TRUE(a.holds_lease());
  EXPECT_FALSE(b.holds_lease());
  a.Stop();
  b.Stop();
  EXPECT_LE(commands, 2);
  // Stopped, the holder hands the lease over at once.
  // (It is left to expire within a millisecond: gone, or at most 1 ms to live.)
  EXPECT_LE(common::RunRedisCommand(*redis_, {"PTTL", "rg:{s0}:dl:timer-lease"})->integer, 1);
}

// A timer scheduled 50 ms ahead, in this process, fires though the safety net is 60 s: the
// store tells the engine.
TEST_F(TimerEngineTest, TimerScheduledSoonInThisProcessFiresThoughTheSafetyNetIsAMinute) {
  common::RealClock real;
  TimerEngine engine(*store_, *redis_, real, &metrics_, Quiet("local"));
  store_->SetTimerScheduledHook(
      [&engine](int shard, absl::Time due) { engine.Scheduled(shard, due); });
  engine.Start();
  ASSERT_TRUE(WaitFor([&] { return engine.sleeps() >= 1; }, absl::Seconds(10)));
  const v1::Deadline d = OneTimerDeadline(real, 2, real.Now() + absl::Milliseconds(50));
  ASSERT_EQ(*store_->CommitBlocking(2, {{d, 0, std::nullopt}}, {}), CommitOutcome::kOk);
  EXPECT_TRUE(WaitFor([&] { return metrics_.missed->Value() >= 1; }, absl::Seconds(20)));
  engine.Stop();
  store_->SetTimerScheduledHook(nullptr);
  EXPECT_EQ(Get(d.id())->state(), v1::DEADLINE_STATE_OVERDUE);
}

// The same from another replica's store: its PUBLISH on the timer channel wakes the engine.
TEST_F(TimerEngineTest, TimerScheduledSoonByAnotherReplicaFiresThroughPubSub) {
  common::RealClock real;
  TimerEngineOptions options = Quiet("engine");
  options.pubsub = *common::ParseRedisUrl(server_.url());
  TimerEngine engine(*store_, *redis_, real, &metrics_, options);
  engine.Start();
  ASSERT_TRUE(WaitFor([&] { return engine.sleeps() >= 1 && engine.subscriptions() >= 1; },
                      absl::Seconds(10)));
  // Another process: its own connection, store and publisher.
  auto redis_b = testing::NewClient(server_);
  RedisDeadlineStore store_b(*redis_b, common::Sharding(kShards));
  TimerScheduledPublisher publisher(*redis_b, real, absl::Seconds(60));
  store_b.SetTimerScheduledHook(
      [&publisher](int shard, absl::Time due) { publisher.Publish(shard, due); });
  const v1::Deadline d = OneTimerDeadline(real, 3, real.Now() + absl::Milliseconds(50));
  ASSERT_EQ(*store_b.CommitBlocking(3, {{d, 0, std::nullopt}}, {}), CommitOutcome::kOk);
  EXPECT_TRUE(WaitFor([&] { return metrics_.missed->Value() >= 1; }, absl::Seconds(20)));
  engine.Stop();
  EXPECT_EQ(Get(d.id())->state(), v1::DEADLINE_STATE_OVERDUE);
}

// A test clock moved past the due instant wakes the engine: it fires without waiting for
// the safety net.
TEST_F(TimerEngineTest, TestClockMovedPastTheDueTimeFiresAtOnce) {
  const absl::Time due = clock_.Now() + absl::Hours(1);
  const v1::Deadline d = OneTimerDeadline(clock_, 0, due);
  ASSERT_EQ(*store_->CommitBlocking(0, {{d, 0, std::nullopt}}, {}), CommitOutcome::kOk);
  TimerEngine engine(*store_, *redis_, clock_, &metrics_, Quiet("moved"));
  engine.Start();
  ASSERT_TRUE(WaitFor([&] { return engine.sleeps() >= 1; }, absl::Seconds(10)));
  clock_.Set(due + absl::Seconds(1));
  EXPECT_TRUE(WaitFor([&] { return metrics_.missed->Value() >= 1; }, absl::Seconds(20)));
  engine.Stop();
  EXPECT_EQ(Get(d.id())->state(), v1::DEADLINE_STATE_OVERDUE);
}

// Sleeping until a timer due in a minute, the engine hears of one due in 100 ms: that one
// fires at its own time, the later one not yet.
TEST_F(TimerEngineTest, EarlierTimerAddedWhileSleepingUntilALaterOneFiresAtItsOwnTime) {
  common::RealClock real;
  const v1::Deadline later = OneTimerDeadline(real, 1, real.Now() + absl::Minutes(1));
  ASSERT_EQ(*store_->CommitBlocking(1, {{later, 0, std::nullopt}}, {}), CommitOutcome::kOk);
  TimerEngineOptions options = Quiet("earlier");
  options.recheck_interval = absl::Minutes(5);
  TimerEngine engine(*store_, *redis_, real, &metrics_, options);
  store_->SetTimerScheduledHook(
      [&engine](int shard, absl::Time due) { engine.Scheduled(shard, due); });
  engine.Start();
  ASSERT_TRUE(WaitFor([&] { return engine.sleeps() >= 1; }, absl::Seconds(10)));
  const v1::Deadline earlier = OneTimerDeadline(real, 2, real.Now() + absl::Milliseconds(100));
  ASSERT_EQ(*store_->CommitBlocking(2, {{earlier, 0, std::nullopt}}, {}), CommitOutcome::kOk);
  EXPECT_TRUE(WaitFor([&] { return metrics_.missed->Value() >= 1; }, absl::Seconds(20)));
  engine.Stop();
  store_->SetTimerScheduledHook(nullptr);
  EXPECT_EQ(Get(earlier.id())->state(), v1::DEADLINE_STATE_OVERDUE);
  EXPECT_EQ(Get(later.id())->state(), v1::DEADLINE_STATE_RUNNING);
}

}  // namespace
}  // namespace rogatory::deadlines
