// Durable timers on a real redis-server: deadlines fire on time from the simulated clock,
// three engines fire each of 10,000 due timers exactly once even when one dies holding
// claims, a restart loses nothing, and with a real clock a due timer fires within a second.
#include "timer_engine.h"

#include <set>
#include <thread>

#include "gtest/gtest.h"
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
  o.poll_interval = absl::Milliseconds(20);
  o.batch = 100;
  return o;
}

class TimerEngineTest : public DeadlinesRedisTest {
 protected:
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
    o.poll_interval = absl::Milliseconds(200);  // the production default
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

}  // namespace
}  // namespace rogatory::deadlines
