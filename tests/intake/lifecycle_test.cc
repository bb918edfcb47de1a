// The lifecycle table (lifecycle.h) and TransitionRequest walking every instrument's
// state machine, legal and illegal moves, on the in-memory store.
#include "lifecycle.h"

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "in_memory_request_store.h"
#include "intake_harness.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;
using testing::IntakeHarness;

const pb::Instrument kInstruments[] = {pb::INSTRUMENT_MLA,
                                       pb::INSTRUMENT_EIO,
                                       pb::INSTRUMENT_EAW,
                                       pb::INSTRUMENT_EXTRADITION,
                                       pb::INSTRUMENT_PROVISIONAL_ARREST,
                                       pb::INSTRUMENT_FREEZING_ORDER,
                                       pb::INSTRUMENT_PRODUCTION_ORDER};

// --- The table itself -----------------------------------------------------------------

TEST(LifecycleTableTest, EveryMoveEmitsAnEventAndEveryStatusIsReachableAndCanClose) {
  const Lifecycle& l = Lifecycle::Default();
  for (pb::Instrument instrument : kInstruments) {
    SCOPED_TRACE(pb::Instrument_Name(instrument));
    // Reachable from submission (RECEIVED or INCOMPLETE; INCOMPLETE -> RECEIVED by supplement).
    std::set<pb::RequestStatus> reached = {pb::REQUEST_STATUS_RECEIVED,
                                           pb::REQUEST_STATUS_INCOMPLETE};
    std::deque<pb::RequestStatus> todo(reached.begin(), reached.end());
    while (!todo.empty()) {
      pb::RequestStatus s = todo.front();
      todo.pop_front();
      for (const Move& m : l.MovesFrom(instrument, s)) {
        EXPECT_NE(m.event, pb::EVENT_TYPE_UNSPECIFIED)
            << pb::RequestStatus_Name(s) << " -> " << pb::RequestStatus_Name(m.to);
        EXPECT_NE(m.to, s) << "self move " << pb::RequestStatus_Name(s);
        if (reached.insert(m.to).second) todo.push_back(m.to);
      }
    }
    for (pb::RequestStatus s : l.Statuses(instrument)) {
      EXPECT_TRUE(reached.contains(s)) << pb::RequestStatus_Name(s) << " is unreachable";
      // Every status leads to CLOSED.
      std::set<pb::RequestStatus> seen = {s};
      std::deque<pb::RequestStatus> next = {s};
      bool closes = s == pb::REQUEST_STATUS_CLOSED;
      while (!next.empty() && !closes) {
        for (const Move& m : l.MovesFrom(instrument, next.front())) {
          closes |= m.to == pb::REQUEST_STATUS_CLOSED;
          if (seen.insert(m.to).second) next.push_back(m.to);
        }
        next.pop_front();
      }
      EXPECT_TRUE(closes) << pb::RequestStatus_Name(s) << " never reaches CLOSED";
    }
    EXPECT_TRUE(l.MovesFrom(instrument, pb::REQUEST_STATUS_CLOSED).empty());
    EXPECT_FALSE(l.IsOpen(instrument, pb::REQUEST_STATUS_CLOSED));
    EXPECT_FALSE(l.IsOpen(instrument, pb::REQUEST_STATUS_WITHDRAWN));
    EXPECT_TRUE(l.IsOpen(instrument, pb::REQUEST_STATUS_RECEIVED));
  }
}

TEST(LifecycleTableTest, MovesEmitTheTriggerNamesDeadlineRulesUse) {
  const Lifecycle& l = Lifecycle::Default();
  auto event = [&](pb::Instrument i, pb::RequestStatus from, pb::RequestStatus to) {
    auto m = l.Find(i, from, to);
    return m ? m->event : pb::EVENT_TYPE_UNSPECIFIED;
  };
  EXPECT_EQ(event(pb::INSTRUMENT_EIO, pb::REQUEST_STATUS_RECEIVED, pb::REQUEST_STATUS_FORWARDED),
            pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY);
  EXPECT_EQ(
      event(pb::INSTRUMENT_EIO, pb::REQUEST_STATUS_FORWARDED, pb::REQUEST_STATUS_ACKNOWLEDGED),
      pb::EVENT_TYPE_REQUEST_ACKNOWLEDGED);
  EXPECT_EQ(event(pb::INSTRUMENT_EIO, pb::REQUEST_STATUS_FORWARDED, pb::REQUEST_STATUS_RECOGNISED),
            pb::EVENT_TYPE_REQUEST_RECOGNISED);
  EXPECT_EQ(event(pb::INSTRUMENT_EAW, pb::REQUEST_STATUS_FORWARDED, pb::REQUEST_STATUS_ARRESTED),
            pb::EVENT_TYPE_PERSON_ARRESTED);
  EXPECT_EQ(event(pb::INSTRUMENT_EAW, pb::REQUEST_STATUS_CONSENT_GIVEN,
                  pb::REQUEST_STATUS_FINAL_DECISION),
            pb::EVENT_TYPE_FINAL_DECISION);
  EXPECT_EQ(event(pb::INSTRUMENT_PROVISIONAL_ARREST, pb::REQUEST_STATUS_FORWARDED,
                  pb::REQUEST_STATUS_PROVISIONALLY_ARRESTED),
            pb::EVENT_TYPE_PROVISIONAL_ARREST);
  EXPECT_EQ(event(pb::INSTRUMENT_EIO, pb::REQUEST_STATUS_SUSPENDED, pb::REQUEST_STATUS_RECOGNISED),
            pb::EVENT_TYPE_REQUEST_RESUMED);
  EXPECT_EQ(event(pb::INSTRUMENT_PRODUCTION_ORDER, pb::REQUEST_STATUS_SENT_TO_PROVIDER,
                  pb::REQUEST_STATUS_OBJECTED),
            pb::EVENT_TYPE_ENFORCING_AUTHORITY_OBJECTED);
}

// Directive 2014/41/EU Art 16(1): the competent executing authority acknowledges an EIO it
// has received; the order then goes on as a received one does. No other instrument has an
// acknowledgment of receipt.
TEST(LifecycleTableTest, OnlyTheEioIsAcknowledgedAndOnlyAfterReceipt) {
  const Lifecycle& l = Lifecycle::Default();
  constexpr pb::Instrument kEio = pb::INSTRUMENT_EIO;
  EXPECT_TRUE(l.Find(kEio, pb::REQUEST_STATUS_FORWARDED, pb::REQUEST_STATUS_ACKNOWLEDGED));
  for (pb::RequestStatus before : {pb::REQUEST_STATUS_RECEIVED, pb::REQUEST_STATUS_INCOMPLETE,
                                   pb::REQUEST_STATUS_TRANSLATION_PENDING}) {
    EXPECT_FALSE(l.Find(kEio, before, pb::REQUEST_STATUS_ACKNOWLEDGED))
        << pb::RequestStatus_Name(before);
  }
  // From ACKNOWLEDGED, every move FORWARDED has but the acknowledgment itself.
  std::set<pb::RequestStatus> after_forwarded, after_acknowledged;
  for (const Move& m : l.MovesFrom(kEio, pb::REQUEST_STATUS_FORWARDED)) {
    if (m.to != pb::REQUEST_STATUS_ACKNOWLEDGED) after_forwarded.insert(m.to);
  }
  for (const Move& m : l.MovesFrom(kEio, pb::REQUEST_STATUS_ACKNOWLEDGED)) {
    after_acknowledged.insert(m.to);
  }
  EXPECT_EQ(after_acknowledged, after_forwarded);
  EXPECT_TRUE(after_acknowledged.contains(pb::REQUEST_STATUS_RECOGNISED));
  EXPECT_TRUE(after_acknowledged.contains(pb::REQUEST_STATUS_REFUSED));
  EXPECT_TRUE(after_acknowledged.contains(pb::REQUEST_STATUS_POSTPONED));
  EXPECT_TRUE(after_acknowledged.contains(pb::REQUEST_STATUS_SUSPENDED));
  EXPECT_TRUE(after_acknowledged.contains(pb::REQUEST_STATUS_WITHDRAWN));
  EXPECT_FALSE(after_acknowledged.contains(pb::REQUEST_STATUS_FORWARDED));
  for (pb::Instrument instrument : kInstruments) {
    if (instrument == kEio) continue;
    const auto statuses = l.Statuses(instrument);
    EXPECT_EQ(std::count(statuses.begin(), statuses.end(), pb::REQUEST_STATUS_ACKNOWLEDGED), 0)
        << pb::Instrument_Name(instrument);
  }
}

TEST(LifecycleTableTest, ProductionOrderGoesToAProviderNotAnAuthority) {
  const Lifecycle& l = Lifecycle::Default();
  const auto statuses = l.Statuses(pb::INSTRUMENT_PRODUCTION_ORDER);
  const std::set<pb::RequestStatus> set(statuses.begin(), statuses.end());
  EXPECT_FALSE(set.contains(pb::REQUEST_STATUS_FORWARDED));
  EXPECT_FALSE(set.contains(pb::REQUEST_STATUS_RECOGNISED));
  EXPECT_TRUE(set.contains(pb::REQUEST_STATUS_SENT_TO_PROVIDER));
  // And the EIO knows nothing of arrests.
  EXPECT_FALSE(
      l.Find(pb::INSTRUMENT_EIO, pb::REQUEST_STATUS_FORWARDED, pb::REQUEST_STATUS_ARRESTED));
}

// --- Through the service, per instrument ------------------------------------------------

struct Path {
  pb::Instrument instrument;
  std::vector<std::pair<pb::RequestStatus, pb::EventType>> steps;  // after RECEIVED
  // An illegal move from the status reached after `illegal_after` steps.
  int illegal_after;
  pb::RequestStatus illegal_to;
};

std::vector<Path> Paths() {
  using S = pb::RequestStatus;
  using E = pb::EventType;
  auto p = [](pb::Instrument i, std::vector<std::pair<S, E>> steps, int after, S to) {
    return Path{i, std::move(steps), after, to};
  };
  return {
      p(pb::INSTRUMENT_EIO,
        {{pb::REQUEST_STATUS_TRANSLATION_PENDING, pb::EVENT_TYPE_REQUEST_TRANSLATION_PENDING},
         {pb::REQUEST_STATUS_FORWARDED, pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY},
         {pb::REQUEST_STATUS_RECOGNISED, pb::EVENT_TYPE_REQUEST_RECOGNISED},
         {pb::REQUEST_STATUS_IN_EXECUTION, pb::EVENT_TYPE_REQUEST_EXECUTION_STARTED},
         {pb::REQUEST_STATUS_PARTIALLY_EXECUTED, pb::EVENT_TYPE_REQUEST_PARTIALLY_EXECUTED},
         {pb::REQUEST_STATUS_CLOSED, pb::EVENT_TYPE_REQUEST_CLOSED}},
        1, pb::REQUEST_STATUS_EXECUTED),
      p(pb::INSTRUMENT_MLA,
        {{pb::REQUEST_STATUS_TRANSLATION_PENDING, pb::EVENT_TYPE_REQUEST_TRANSLATION_PENDING},
         {pb::REQUEST_STATUS_FORWARDED, pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY},
         {pb::REQUEST_STATUS_IN_EXECUTION, pb::EVENT_TYPE_REQUEST_EXECUTION_STARTED},
         {pb::REQUEST_STATUS_EXECUTED, pb::EVENT_TYPE_REQUEST_EXECUTED},
         {pb::REQUEST_STATUS_CLOSED, pb::EVENT_TYPE_REQUEST_CLOSED}},
        2, pb::REQUEST_STATUS_RECOGNISED),
      p(pb::INSTRUMENT_EAW,
        {{pb::REQUEST_STATUS_FORWARDED, pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY},
         {pb::REQUEST_STATUS_ARRESTED, pb::EVENT_TYPE_PERSON_ARRESTED},
         {pb::REQUEST_STATUS_CONSENT_REFUSED, pb::EVENT_TYPE_CONSENT_REFUSED},
         {pb::REQUEST_STATUS_FINAL_DECISION, pb::EVENT_TYPE_FINAL_DECISION},
         {pb::REQUEST_STATUS_POSTPONED, pb::EVENT_TYPE_REQUEST_POSTPONED},
         {pb::REQUEST_STATUS_SURRENDERED, pb::EVENT_TYPE_PERSON_SURRENDERED},
         {pb::REQUEST_STATUS_CLOSED, pb::EVENT_TYPE_REQUEST_CLOSED}},
        1, pb::REQUEST_STATUS_SURRENDERED),
      p(pb::INSTRUMENT_EXTRADITION,
        {{pb::REQUEST_STATUS_PROVISIONALLY_ARRESTED, pb::EVENT_TYPE_PROVISIONAL_ARREST},
         {pb::REQUEST_STATUS_FORMAL_REQUEST_RECEIVED, pb::EVENT_TYPE_FORMAL_REQUEST_RECEIVED},
         {pb::REQUEST_STATUS_CONSENT_GIVEN, pb::EVENT_TYPE_CONSENT_GIVEN},
         {pb::REQUEST_STATUS_FINAL_DECISION, pb::EVENT_TYPE_FINAL_DECISION},
         {pb::REQUEST_STATUS_RELEASED, pb::EVENT_TYPE_PERSON_RELEASED},
         {pb::REQUEST_STATUS_CLOSED, pb::EVENT_TYPE_REQUEST_CLOSED}},
        1, pb::REQUEST_STATUS_SURRENDERED),
      p(pb::INSTRUMENT_PROVISIONAL_ARREST,
        {{pb::REQUEST_STATUS_PROVISIONALLY_ARRESTED, pb::EVENT_TYPE_PROVISIONAL_ARREST},
         {pb::REQUEST_STATUS_FORMAL_REQUEST_RECEIVED, pb::EVENT_TYPE_FORMAL_REQUEST_RECEIVED},
         {pb::REQUEST_STATUS_CLOSED, pb::EVENT_TYPE_REQUEST_CLOSED}},
        0, pb::REQUEST_STATUS_FINAL_DECISION),
      p(pb::INSTRUMENT_FREEZING_ORDER,
        {{pb::REQUEST_STATUS_FORWARDED, pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY},
         {pb::REQUEST_STATUS_POSTPONED, pb::EVENT_TYPE_REQUEST_POSTPONED},
         {pb::REQUEST_STATUS_IN_EXECUTION, pb::EVENT_TYPE_REQUEST_RESUMED},
         {pb::REQUEST_STATUS_EXECUTED, pb::EVENT_TYPE_REQUEST_EXECUTED},
         {pb::REQUEST_STATUS_CLOSED, pb::EVENT_TYPE_REQUEST_CLOSED}},
        4, pb::REQUEST_STATUS_RECEIVED),
      p(pb::INSTRUMENT_PRODUCTION_ORDER,
        {{pb::REQUEST_STATUS_SENT_TO_PROVIDER, pb::EVENT_TYPE_SENT_TO_PROVIDER},
         {pb::REQUEST_STATUS_OBJECTED, pb::EVENT_TYPE_ENFORCING_AUTHORITY_OBJECTED},
         {pb::REQUEST_STATUS_DATA_PRODUCED, pb::EVENT_TYPE_DATA_PRODUCED},
         {pb::REQUEST_STATUS_CLOSED, pb::EVENT_TYPE_REQUEST_CLOSED}},
        0, pb::REQUEST_STATUS_FORWARDED),
  };
}

class InstrumentLifecycleTest : public ::testing::TestWithParam<Path> {
 protected:
  InMemoryRequestStore store_;
  IntakeHarness h_{store_};
};

TEST_P(InstrumentLifecycleTest, LegalPathEmitsEachTriggerAndIllegalMoveNamesAllowedStatuses) {
  const Path& path = GetParam();
  const v1::Request submitted = h_.SubmitComplete(path.instrument);
  ASSERT_EQ(submitted.status(), pb::REQUEST_STATUS_RECEIVED);
  pb::RequestStatus current = pb::REQUEST_STATUS_RECEIVED;
  for (size_t i = 0; i <= path.steps.size(); ++i) {
    if (static_cast<int>(i) == path.illegal_after) {
      grpc::Status s = h_.Move(submitted.id(), path.illegal_to);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
          << pb::RequestStatus_Name(path.illegal_to);
      for (const Move& m : Lifecycle::Default().MovesFrom(path.instrument, current)) {
        EXPECT_NE(s.error_message().find(pb::RequestStatus_Name(m.to)), std::string::npos)
            << s.error_message();
      }
    }
    if (i == path.steps.size()) break;
    const auto& [to, event] = path.steps[i];
    v1::Request after;
    grpc::Status s = h_.Move(submitted.id(), to, &after, "STEP");
    ASSERT_TRUE(s.ok()) << pb::RequestStatus_Name(current) << " -> " << pb::RequestStatus_Name(to)
                        << ": " << s.error_message();
    EXPECT_EQ(after.status(), to);
    EXPECT_EQ(after.etag(), std::to_string(i + 2));
    current = to;
  }
  // Closed is final.
  EXPECT_EQ(h_.Move(submitted.id(), pb::REQUEST_STATUS_RECEIVED).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  // The outbox holds the submission and one event per step, in order, sequence = version.
  std::vector<pb::Event> emitted;
  for (const auto& e : store_.Outbox()) {
    if (e.request_id() == submitted.id()) emitted.push_back(e);
  }
  ASSERT_EQ(emitted.size(), path.steps.size() + 1);
  pb::RequestStatus previous = pb::REQUEST_STATUS_RECEIVED;
  for (size_t i = 0; i < path.steps.size(); ++i) {
    const pb::Event& e = emitted[i + 1];
    EXPECT_EQ(e.type(), path.steps[i].second) << i;
    EXPECT_EQ(e.status(), path.steps[i].first);
    EXPECT_EQ(e.previous_status(), previous);
    EXPECT_EQ(e.sequence(), static_cast<int64_t>(i + 2));
    EXPECT_EQ(e.source(), "intake");
    EXPECT_EQ(e.instrument(), path.instrument);
    EXPECT_EQ(e.request().requested_state(), "DE");
    EXPECT_EQ(e.actor().authority().authority_id(), "DE-GSTA-FRANKFURT");
    EXPECT_EQ(e.actor().role(), pb::AUTHORITY_ROLE_EXECUTING);
    EXPECT_EQ(e.reason_code(), "STEP");
    EXPECT_EQ(e.trace_id(), submitted.trace_id());
    previous = path.steps[i].first;
  }
}

INSTANTIATE_TEST_SUITE_P(AllInstruments, InstrumentLifecycleTest, ::testing::ValuesIn(Paths()),
                         [](const ::testing::TestParamInfo<Path>& info) {
                           return pb::Instrument_Name(info.param.instrument);
                         });

class TransitionTest : public ::testing::Test {
 protected:
  InMemoryRequestStore store_;
  IntakeHarness h_{store_};
};

TEST_F(TransitionTest, RefusalNeedsCodedGroundsAndRecordsThem) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  v1::TransitionRequestRequest req;
  req.set_id(r.id());
  req.set_target_status(pb::REQUEST_STATUS_REFUSED);
  grpc::Status s = h_.Transition(req, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(IntakeHarness::BadFields(s), std::set<std::string>{"refusal_grounds"});
  req.add_refusal_grounds(pb::REFUSAL_GROUND_NE_BIS_IN_IDEM);
  req.add_refusal_grounds(pb::REFUSAL_GROUND_FUNDAMENTAL_RIGHTS);
  req.set_legal_basis("Directive 2014/41/EU Art 11(1)(d),(f)");
  ASSERT_TRUE(h_.Transition(req, nullptr).ok());
  const auto history = h_.History(r.id());
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].type(), pb::EVENT_TYPE_REQUEST_REFUSED);
  ASSERT_EQ(history[1].status_change().refusal_grounds_size(), 2);
  EXPECT_EQ(history[1].status_change().refusal_grounds(0), pb::REFUSAL_GROUND_NE_BIS_IN_IDEM);
  EXPECT_EQ(history[1].legal_basis(), "Directive 2014/41/EU Art 11(1)(d),(f)");
}

TEST_F(TransitionTest, StaleEtagIsAbortedAndCurrentEtagApplies) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  ASSERT_TRUE(h_.Move(r.id(), pb::REQUEST_STATUS_TRANSLATION_PENDING).ok());
  v1::TransitionRequestRequest req;
  req.set_id(r.id());
  req.set_target_status(pb::REQUEST_STATUS_FORWARDED);
  req.set_etag(r.etag());  // "1", now stale
  EXPECT_EQ(h_.Transition(req, nullptr).error_code(), grpc::StatusCode::ABORTED);
  req.set_etag("2");
  v1::Request after;
  ASSERT_TRUE(h_.Transition(req, &after).ok());
  EXPECT_EQ(after.etag(), "3");
  req.set_etag("not-a-number");
  EXPECT_EQ(IntakeHarness::BadFields(h_.Transition(req, nullptr)), std::set<std::string>{"etag"});
}

TEST_F(TransitionTest, RetryWithSameRequestIdReplaysAndOtherPayloadIsAlreadyExists) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  v1::TransitionRequestRequest req;
  req.set_request_id("t-1");
  req.set_id(r.id());
  req.set_target_status(pb::REQUEST_STATUS_TRANSLATION_PENDING);
  v1::Request first, again;
  ASSERT_TRUE(h_.Transition(req, &first).ok());
  // The retry replays although TRANSLATION_PENDING -> TRANSLATION_PENDING is not a legal move.
  ASSERT_TRUE(h_.Transition(req, &again).ok());
  EXPECT_EQ(again.etag(), first.etag());
  EXPECT_EQ(h_.History(r.id()).size(), 2u);
  req.set_target_status(pb::REQUEST_STATUS_FORWARDED);
  EXPECT_EQ(h_.Transition(req, nullptr).error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(TransitionTest, UnknownRequestIsNotFound) {
  EXPECT_EQ(
      h_.Move(common::Sharding::MakeId("rq", 3, h_.clock().Now()), pb::REQUEST_STATUS_FORWARDED)
          .error_code(),
      grpc::StatusCode::NOT_FOUND);
}

// --- AcknowledgeRequest (EIO Annex B) ----------------------------------------------------

class AcknowledgeTest : public ::testing::Test {
 protected:
  // An EIO received by the competent authority (status FORWARDED, etag 2).
  v1::Request ForwardedEio() {
    const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
    v1::Request forwarded;
    EXPECT_TRUE(h_.Move(r.id(), pb::REQUEST_STATUS_FORWARDED, &forwarded).ok());
    return forwarded;
  }
  std::vector<pb::Event> Emitted(const std::string& id) {
    std::vector<pb::Event> out;
    for (const auto& e : store_.Outbox()) {
      if (e.request_id() == id) out.push_back(e);
    }
    return out;
  }

  InMemoryRequestStore store_;
  IntakeHarness h_{store_};
};

TEST_F(AcknowledgeTest, ExecutingAuthorityAcknowledgesAReceivedEioInOneStep) {
  const v1::Request r = ForwardedEio();
  h_.clock().Advance(absl::Hours(20));
  v1::Request acked;
  grpc::Status s = h_.Acknowledge(r.id(), &acked);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(acked.status(), pb::REQUEST_STATUS_ACKNOWLEDGED);
  EXPECT_EQ(acked.etag(), "3");
  // One history entry and the same event announced: REQUEST_ACKNOWLEDGED, which meets the
  // EIO_ACKNOWLEDGE limit.
  const auto history = h_.History(r.id());
  ASSERT_EQ(history.size(), 3u);
  const pb::Event& e = history[2];
  EXPECT_EQ(e.type(), pb::EVENT_TYPE_REQUEST_ACKNOWLEDGED);
  EXPECT_EQ(e.status(), pb::REQUEST_STATUS_ACKNOWLEDGED);
  EXPECT_EQ(e.previous_status(), pb::REQUEST_STATUS_FORWARDED);
  EXPECT_EQ(e.actor().authority().authority_id(), "DE-GSTA-FRANKFURT");
  EXPECT_EQ(e.actor().role(), pb::AUTHORITY_ROLE_EXECUTING);
  EXPECT_EQ(e.legal_basis(), "Directive 2014/41/EU Art 16(1)");
  const auto emitted = Emitted(r.id());
  ASSERT_EQ(emitted.size(), 3u);
  EXPECT_EQ(emitted[2].event_id(), e.event_id());
  EXPECT_EQ(emitted[2].type(), pb::EVENT_TYPE_REQUEST_ACKNOWLEDGED);
  // The order goes on: recognised after the acknowledgment.
  v1::Request recognised;
  ASSERT_TRUE(h_.Move(r.id(), pb::REQUEST_STATUS_RECOGNISED, &recognised).ok());
  EXPECT_EQ(recognised.status(), pb::REQUEST_STATUS_RECOGNISED);
}

TEST_F(AcknowledgeTest, IssuerMayNotAcknowledge) {
  const v1::Request r = ForwardedEio();
  grpc::Status s = h_.Acknowledge(r.id(), nullptr, testing::kIssuer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.status(), pb::REQUEST_STATUS_FORWARDED);
  EXPECT_EQ(h_.History(r.id()).size(), 2u);
}

TEST_F(AcknowledgeTest, BeforeReceiptTwiceOrForAnotherInstrumentIsRefused) {
  // Not yet received by the competent authority.
  const v1::Request received = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  grpc::Status s = h_.Acknowledge(received.id());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("REQUEST_STATUS_FORWARDED"), std::string::npos)
      << s.error_message();
  ASSERT_TRUE(h_.Move(received.id(), pb::REQUEST_STATUS_TRANSLATION_PENDING).ok());
  EXPECT_EQ(h_.Acknowledge(received.id()).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // Once: a second acknowledgment is refused, a retry with the same key replays.
  const v1::Request r = ForwardedEio();
  v1::Request first, again;
  ASSERT_TRUE(h_.Acknowledge(r.id(), &first, testing::kExecutor, "ack-1").ok());
  ASSERT_TRUE(h_.Acknowledge(r.id(), &again, testing::kExecutor, "ack-1").ok());
  EXPECT_EQ(again.etag(), first.etag());
  EXPECT_EQ(h_.Acknowledge(r.id()).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(h_.History(r.id()).size(), 3u);

  // After a decision it is too late.
  const v1::Request decided = ForwardedEio();
  ASSERT_TRUE(h_.Move(decided.id(), pb::REQUEST_STATUS_RECOGNISED).ok());
  EXPECT_EQ(h_.Acknowledge(decided.id()).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // An EAW has no acknowledgment of receipt.
  const v1::Request eaw = h_.SubmitComplete(pb::INSTRUMENT_EAW);
  ASSERT_TRUE(h_.Move(eaw.id(), pb::REQUEST_STATUS_FORWARDED).ok());
  s = h_.Acknowledge(eaw.id());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("European Investigation Order"), std::string::npos)
      << s.error_message();
}

TEST_F(AcknowledgeTest, StaleEtagIsAbortedAndUnknownRequestNotFound) {
  const v1::Request r = ForwardedEio();
  EXPECT_EQ(h_.Acknowledge(r.id(), nullptr, testing::kExecutor, "", "1").error_code(),
            grpc::StatusCode::ABORTED);
  EXPECT_TRUE(h_.Acknowledge(r.id(), nullptr, testing::kExecutor, "", "2").ok());
  EXPECT_EQ(h_.Acknowledge(common::Sharding::MakeId("rq", 3, h_.clock().Now())).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(IntakeHarness::BadFields(h_.Acknowledge("")), std::set<std::string>{"id"});
}

// One way of doing each thing: TransitionRequest does not offer a second path.
TEST_F(AcknowledgeTest, TransitionToAcknowledgedPointsToAcknowledgeRequest) {
  const v1::Request r = ForwardedEio();
  grpc::Status s = h_.Move(r.id(), pb::REQUEST_STATUS_ACKNOWLEDGED);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(IntakeHarness::BadFields(s), std::set<std::string>{"target_status"});
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.status(), pb::REQUEST_STATUS_FORWARDED);
}

}  // namespace
}  // namespace rogatory::intake
