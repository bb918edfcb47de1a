// Deadlines on a real redis-server: started, settled, suspended and cancelled by intake's
// events (each handled once), and changed through the tracker with their events written in
// the same step.
#include "deadline_store.h"

#include <map>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "redis_fixture.h"
#include "rogatory/common/ids.h"

namespace rogatory::deadlines {
namespace {

using common::v1::EventType;
using testing::DeadlinesRedisTest;
using ::testing::ElementsAre;
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
  ASSERT_TRUE(
      Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_CONSENT_GIVEN, eaw, clock_.Now())).ok());
  deadlines = ListByRequest(this, *store_, rq);
  ASSERT_EQ(deadlines.size(), 2u);
  std::map<std::string, v1::DeadlineState> states;
  for (const auto& d : deadlines) states[d.rule_id()] = d.state();
  EXPECT_EQ(states["EAW_DECISION_NO_CONSENT"], v1::DEADLINE_STATE_CANCELLED);
  EXPECT_EQ(states["EAW_DECISION_CONSENT"], v1::DEADLINE_STATE_RUNNING);

  clock_.Advance(absl::Hours(24));
  ASSERT_TRUE(
      Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_FINAL_DECISION, eaw, clock_.Now())).ok());
  deadlines = ListByRequest(this, *store_, rq);
  states.clear();
  for (const auto& d : deadlines) states[d.rule_id()] = d.state();
  EXPECT_EQ(states["EAW_DECISION_CONSENT"], v1::DEADLINE_STATE_MET);
  EXPECT_EQ(states["EAW_SURRENDER"], v1::DEADLINE_STATE_RUNNING);

  ASSERT_TRUE(
      Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_WITHDRAWN, eaw, clock_.Now())).ok());
  for (const auto& d : ListByRequest(this, *store_, rq))
    EXPECT_FALSE(IsOpen(d.state())) << d.rule_id();

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
  auto timers = common::RunRedisCommand(*redis_, {"ZCARD", RedisDeadlineStore::Key(1, "timers")});
  EXPECT_EQ(timers->integer, 0);
}

TEST_F(DeadlineEventsTest, RequestSuspensionStopsTheClockAndResumptionMovesTheDueTime) {
  const std::string rq = RequestId(2);
  const auto eio = common::v1::INSTRUMENT_EIO;
  // The acknowledgment week runs from reception by the competent authority (Art 16(1)).
  auto ack = [&] {
    for (const auto& d : ListByRequest(this, *store_, rq)) {
      if (d.rule_id() == "EIO_ACKNOWLEDGE") return d;
    }
    ADD_FAILURE() << "no EIO_ACKNOWLEDGE deadline";
    return v1::Deadline();
  };
  ASSERT_TRUE(
      Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_SUBMITTED, eio, clock_.Now())).ok());
  EXPECT_TRUE(ListByRequest(this, *store_, rq).empty());
  ASSERT_TRUE(
      Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY, eio,
                          clock_.Now()))
          .ok());
  auto d = ack();
  EXPECT_EQ(d.trigger_event_type(), common::v1::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY);
  const absl::Time due = FromProtoTime(d.due_time());
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(
      Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_SUSPENDED, eio, clock_.Now())).ok());
  EXPECT_EQ(ack().state(), v1::DEADLINE_STATE_SUSPENDED);
  clock_.Advance(absl::Hours(72));
  ASSERT_TRUE(
      Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_RESUMED, eio, clock_.Now())).ok());
  d = ack();
  EXPECT_EQ(d.state(), v1::DEADLINE_STATE_RUNNING);
  EXPECT_EQ(FromProtoTime(d.due_time()), due + absl::Hours(72));
  ASSERT_TRUE(
      Deliver(IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_ACKNOWLEDGED, eio, clock_.Now()))
          .ok());
  EXPECT_EQ(ack().state(), v1::DEADLINE_STATE_MET);
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
    tracker_->Mutate(
        d->id(), key, "COMPLEX",
        [&](v1::Deadline& x) {
          return Extend(x, absl::Hours(24 * 30), "COMPLEX", "", clock_.Now(), tracker_->PlaceOf(x));
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

// The executing authority's region on the event's facts picks its holidays: 30 days from
// 7 December 2026 end on 6 January, Epiphany in Bavaria but not in Berlin.
TEST_F(DeadlineEventsTest, RecognitionLimitCountsWithTheHolidaysOfTheAuthoritysRegion) {
  const absl::Time received =
      absl::FromCivil(absl::CivilSecond(2026, 12, 7, 10, 0, 0), testing::Zone("Europe/Berlin"));
  std::map<std::string, v1::Deadline> by_region;
  for (const std::string region : {"DE-BY", "DE-BE"}) {
    const std::string rq = RequestId(region == "DE-BY" ? 1 : 3);
    auto e = IntakeEvent(rq, common::v1::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY,
                         common::v1::INSTRUMENT_EIO, received);
    e.mutable_request()->mutable_executing_authority()->set_region(region);
    ASSERT_EQ(*Deliver(e), common::EventHandler::Outcome::kHandled);
    for (const auto& d : ListByRequest(this, *store_, rq)) {
      if (d.rule_id() == "EIO_RECOGNITION") by_region[region] = d;
    }
  }
  ASSERT_EQ(by_region.size(), 2u);
  const absl::TimeZone berlin = testing::Zone("Europe/Berlin");
  EXPECT_EQ(FromProtoTime(by_region["DE-BY"].due_time()),
            absl::FromCivil(absl::CivilSecond(2027, 1, 8, 0, 0, 0), berlin));
  EXPECT_EQ(by_region["DE-BY"].calendar_region(), "DE-BY");
  EXPECT_EQ(FromProtoTime(by_region["DE-BE"].due_time()),
            absl::FromCivil(absl::CivilSecond(2027, 1, 7, 0, 0, 0), berlin));
  EXPECT_EQ(by_region["DE-BE"].calendar_state(), "DE");
}

// Walks an index page by page (issue 22 item 3): every entry once, in (due, id) order,
// even when many share a due time and the entry a cursor names is gone.
TEST_F(DeadlineEventsTest, IndexPagesWalkEveryEntryOnceAcrossEqualDueTimes) {
  const std::string rq = RequestId(2);
  std::set<std::string> started;
  for (int i = 0; i < 201; ++i) {
    DeadlineTracker::StartRequest r;
    r.request_id = rq;
    r.rule_id = "EAW_DECISION_CONSENT";
    // Three trigger days a week apart: 67 deadlines share each due time.
    r.trigger_time = clock_.Now() - absl::Hours(24 * 7) * (i % 3);
    r.requested_state = "DE";
    r.idempotency_key = absl::StrCat("caller/page-", i);
    Waiter<absl::StatusOr<v1::Deadline>> w;
    tracker_->Start(r, w.Callback());
    auto d = w.Get();
    ASSERT_TRUE(d.ok()) << d.status();
    started.insert(d->id());
  }
  ASSERT_EQ(started.size(), 201u);
  const int shard = *store_->ShardOfRequest(rq);
  auto walk = [&](const std::string& index, int64_t max_score, bool cancel_cursor) {
    std::vector<IndexEntry> all;
    std::optional<IndexCursor> after;
    for (int page = 0; page < 10; ++page) {
      Waiter<absl::StatusOr<IndexPage>> w;
      store_->ListIndexPage(shard, index, max_score, 100, after, w.Callback());
      auto p = w.Get();
      EXPECT_TRUE(p.ok()) << p.status();
      if (!p.ok()) break;
      EXPECT_LE(p->entries.size(), 100u);
      for (auto& e : p->entries) all.push_back(e);
      if (!p->more || p->entries.empty()) break;
      after = IndexCursor{p->entries.back().score, p->entries.back().id};
      if (cancel_cursor) {
        // The entry the cursor names leaves the open index before the next page.
        Waiter<absl::StatusOr<v1::Deadline>> c;
        tracker_->Mutate(
            after->id, "", "TEST", [&](v1::Deadline& x) { return Cancel(x, clock_.Now()); },
            c.Callback());
        EXPECT_TRUE(c.Get().ok());
      }
    }
    return all;
  };
  const std::vector<IndexEntry> by_request = walk("byreq:" + rq, int64_t{1} << 50, false);
  std::set<std::string> seen;
  for (size_t i = 0; i < by_request.size(); ++i) {
    EXPECT_TRUE(seen.insert(by_request[i].id).second) << "twice: " << by_request[i].id;
    if (i > 0) {
      EXPECT_TRUE(by_request[i - 1].score < by_request[i].score ||
                  (by_request[i - 1].score == by_request[i].score &&
                   by_request[i - 1].id < by_request[i].id));
    }
  }
  EXPECT_EQ(seen, started);
  // Due before the latest due time: the two earlier groups only.
  const int64_t latest = by_request.back().score;
  EXPECT_EQ(walk("byreq:" + rq, latest - 1, false).size(), 134u);
  // The open index, cancelling each page's last entry before the next page is read: the
  // cursor's entry is gone, and nothing after it is skipped or repeated.
  const std::vector<IndexEntry> open = walk("open", int64_t{1} << 50, true);
  std::set<std::string> open_ids;
  for (const auto& e : open) EXPECT_TRUE(open_ids.insert(e.id).second) << e.id;
  EXPECT_EQ(open_ids, started);
}

TEST_F(DeadlineEventsTest, UnknownRuleIsNotFound) {
  EXPECT_EQ(StartDeadline(RequestId(0), "NO_SUCH_RULE").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rogatory::deadlines
