// Deadlines on a real redis-server: started, settled, suspended and cancelled by intake's
// events (each handled once), and changed through the tracker with their events written in
// the same step.
#include "deadline_store.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "redis_fixture.h"
#include "rogatory/common/ids.h"

namespace rogatory::deadlines {
namespace {

using common::v1::EventType;
using ::testing::ElementsAre;
using testing::DeadlinesRedisTest;
using testing::Waiter;

common::v1::Event IntakeEvent(const std::string& request_id, EventType type,
                              common::v1::Instrument instrument, absl::Time at) {
  common::v1::Event e;
  e.set_event_id(common::NewUlid(at));
  e.set_request_id(request_id);
  e.set_type(type);
  *e.mutable_occur_time() = ToProtoTime(at);
  e.set_instrument(instrument);
  e.set_source("intake");
  e.set_trace_id("0123456789abcdef0123456789abcdef");
  e.mutable_request()->set_requested_state("DE");
  e.mutable_request()->set_urgency(common::v1::URGENCY_NORMAL);
  e.mutable_request()->mutable_executing_authority()->set_authority_id("DE-BY-GSTA-MUENCHEN");
  e.mutable_request()->mutable_executing_authority()->set_state("DE");
  e.mutable_request()->mutable_executing_authority()->set_region("DE-BY");
  return e;
}

std::vector<v1::Deadline> ListByRequest(DeadlinesRedisTest* t, DeadlineStore& store,
                                        const std::string& request_id) {
  (void)t;
  Waiter<absl::StatusOr<std::vector<StoredDeadline>>> w;
  store.ListIndex(*store.ShardOfRequest(request_id), "byreq:" + request_id,
                  absl::FromUnixSeconds(int64_t{1} << 40), 100, w.Callback());
  auto found = w.Get();
  EXPECT_TRUE(found.ok());
  std::vector<v1::Deadline> out;
  if (found.ok()) {
    for (auto& s : *found) out.push_back(s.deadline);
  }
  return out;
}

class DeadlineEventsTest : public DeadlinesRedisTest {};

TEST_F(DeadlineEventsTest, EawArrestConsentDecisionSurrenderLifecycle) {
  const std::string rq = RequestId(1);
  const auto eaw = common::v1::INSTRUMENT_EAW;
  auto arrest = IntakeEvent(rq, common::v1::EVENT_TYPE_PERSON_ARRESTED, eaw, clock_.Now());
  ASSERT_EQ(*Deliver(arrest), common::EventHandler::Outcome::kHandled);
  // A repeat is dropped and starts nothing.
  ASSERT_EQ(*Deliver(arrest), common::EventHandler::Outcome::kDuplicate);
  auto deadlines = ListByRequest(this, *store_, rq);
  ASSERT_EQ(deadlines.size(), 1u);
  EXPECT_EQ(deadlines[0].rule_id(), "EAW_DECISION_NO_CONSENT");
  EXPECT_EQ(deadlines[0].executing_authority_id(), "DE-BY-GSTA-MUENCHEN");
  EXPECT_EQ(deadlines[0].time_zone(), "Europe/Berlin");

  clock_.Advance(absl::Hours(48));
  ASSERT_TRUE(Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_CONSENT_GIVEN, eaw, clock_.Now())).ok());
  deadlines = ListByRequest(this, *store_, rq);
  ASSERT_EQ(deadlines.size(), 2u);
  std::map<std::string, v1::DeadlineState> states;
  for (const auto& d : deadlines) states[d.rule_id()] = d.state();
  EXPECT_EQ(states["EAW_DECISION_NO_CONSENT"], v1::DEADLINE_STATE_CANCELLED);
  EXPECT_EQ(states["EAW_DECISION_CONSENT"], v1::DEADLINE_STATE_RUNNING);

  clock_.Advance(absl::Hours(24));
  ASSERT_TRUE(Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_FINAL_DECISION, eaw, clock_.Now())).ok());
  deadlines = ListByRequest(this, *store_, rq);
  states.clear();
  for (const auto& d : deadlines) states[d.rule_id()] = d.state();
  EXPECT_EQ(states["EAW_DECISION_CONSENT"], v1::DEADLINE_STATE_MET);
  EXPECT_EQ(states["EAW_SURRENDER"], v1::DEADLINE_STATE_RUNNING);

  ASSERT_TRUE(Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_WITHDRAWN, eaw, clock_.Now())).ok());
  for (const auto& d : ListByRequest(this, *store_, rq)) EXPECT_FALSE(IsOpen(d.state())) << d.rule_id();

  std::vector<EventType> types;
  std::vector<int64_t> sequences;
  for (const auto& e : OutboxEvents()) {
    types.push_back(e.type());
    sequences.push_back(e.sequence());
    EXPECT_EQ(e.request_id(), rq);
    EXPECT_EQ(e.source(), "deadlines");
    EXPECT_EQ(e.trace_id(), "0123456789abcdef0123456789abcdef");
    EXPECT_TRUE(e.has_deadline());
  }
  EXPECT_THAT(types, ElementsAre(common::v1::EVENT_TYPE_DEADLINE_STARTED,
                                 common::v1::EVENT_TYPE_DEADLINE_CANCELLED,
                                 common::v1::EVENT_TYPE_DEADLINE_STARTED,
                                 common::v1::EVENT_TYPE_DEADLINE_MET,
                                 common::v1::EVENT_TYPE_DEADLINE_STARTED,
                                 common::v1::EVENT_TYPE_DEADLINE_CANCELLED));
  EXPECT_THAT(sequences, ElementsAre(1, 2, 3, 4, 5, 6));
  // Closed deadlines leave no timers behind.
  auto timers = common::RunRedisCommand(*redis_, {"ZCARD", DeadlineStore::Key(1, "timers")});
  EXPECT_EQ(timers->integer, 0);
}

TEST_F(DeadlineEventsTest, RequestSuspensionStopsTheClockAndResumptionMovesTheDueTime) {
  const std::string rq = RequestId(2);
  const auto eio = common::v1::INSTRUMENT_EIO;
  ASSERT_TRUE(Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_SUBMITTED, eio, clock_.Now())).ok());
  auto d = ListByRequest(this, *store_, rq).at(0);
  EXPECT_EQ(d.rule_id(), "EIO_ACKNOWLEDGE");
  const absl::Time due = FromProtoTime(d.due_time());
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_SUSPENDED, eio, clock_.Now())).ok());
  EXPECT_EQ(ListByRequest(this, *store_, rq).at(0).state(), v1::DEADLINE_STATE_SUSPENDED);
  clock_.Advance(absl::Hours(72));
  ASSERT_TRUE(Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_RESUMED, eio, clock_.Now())).ok());
  d = ListByRequest(this, *store_, rq).at(0);
  EXPECT_EQ(d.state(), v1::DEADLINE_STATE_RUNNING);
  EXPECT_EQ(FromProtoTime(d.due_time()), due + absl::Hours(72));
  ASSERT_TRUE(Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_ACKNOWLEDGED, eio, clock_.Now())).ok());
  EXPECT_EQ(ListByRequest(this, *store_, rq).at(0).state(), v1::DEADLINE_STATE_MET);
}

TEST_F(DeadlineEventsTest, UrgentFreezingOrderStartsFortyEightHours) {
  const std::string rq = RequestId(3);
  auto e = IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY,
                       common::v1::INSTRUMENT_FREEZING_ORDER, clock_.Now());
  e.mutable_request()->set_urgency(common::v1::URGENCY_URGENT);
  ASSERT_TRUE(Deliver(e).ok());
  auto d = ListByRequest(this, *store_, rq).at(0);
  EXPECT_EQ(d.rule_id(), "FREEZING_RECOGNITION_URGENT");
  EXPECT_EQ(FromProtoTime(d.due_time()), clock_.Now() + absl::Hours(48));
}

TEST_F(DeadlineEventsTest, ExtendThroughTrackerIsIdempotentAndRefusedBeyondTheRule) {
  auto d = StartDeadline(RequestId(0), "EAW_DECISION_NO_CONSENT");
  ASSERT_TRUE(d.ok()) << d.status();
  auto extend = [&](const std::string& key) {
    Waiter<absl::StatusOr<v1::Deadline>> w;
    tracker_->Mutate(d->id(), key, "COMPLEX",
                     [&](v1::Deadline& x) {
                       return Extend(x, absl::Hours(24 * 30), "COMPLEX", "", clock_.Now(),
                                     tracker_->PlaceOf(x));
                     },
                     w.Callback());
    return w.Get();
  };
  auto first = extend("caller/k1");
  ASSERT_TRUE(first.ok()) << first.status();
  auto repeat = extend("caller/k1");
  ASSERT_TRUE(repeat.ok()) << repeat.status();
  EXPECT_EQ(repeat->extensions_size(), 1);
  auto second = extend("caller/k2");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(EventsOf(common::v1::EVENT_TYPE_DEADLINE_EXTENDED).size(), 1u);
}

TEST_F(DeadlineEventsTest, StartWithSameIdempotencyKeyGivesTheSameDeadline) {
  DeadlineTracker::StartRequest r;
  r.request_id = RequestId(1);
  r.rule_id = "EIO_PROVISIONAL_MEASURES";
  r.trigger_time = clock_.Now();
  r.idempotency_key = "caller/start-1";
  Waiter<absl::StatusOr<v1::Deadline>> a, b;
  tracker_->Start(r, a.Callback());
  auto first = a.Get();
  ASSERT_TRUE(first.ok()) << first.status();
  clock_.Advance(absl::Seconds(5));  // a retry comes later
  tracker_->Start(r, b.Callback());
  auto second = b.Get();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->id(), second->id());
  EXPECT_EQ(EventsOf(common::v1::EVENT_TYPE_DEADLINE_STARTED).size(), 1u);
}

TEST_F(DeadlineEventsTest, UnknownRuleIsNotFound) {
  EXPECT_EQ(StartDeadline(RequestId(0), "NO_SUCH_RULE").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rogatory::deadlines
