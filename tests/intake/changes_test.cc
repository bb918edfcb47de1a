// SupplementRequest, WithdrawRequest, GetRequestHistory and events reported by the other
// services, through the service on the in-memory store.
#include <set>

#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "in_memory_request_store.h"
#include "intake_event_handler.h"
#include "intake_harness.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;
using testing::IntakeHarness;

class ChangesTest : public ::testing::Test {
 protected:
  v1::Request SubmitIncompleteEio() {
    v1::RequestContent c = testing::CompleteEio();
    c.clear_measures();
    v1::Request r;
    EXPECT_TRUE(h_.Submit(c, "", &r).ok());
    EXPECT_EQ(r.status(), pb::REQUEST_STATUS_INCOMPLETE);
    return r;
  }
  absl::StatusOr<common::EventHandler::Outcome> Report(const pb::Event& e) {
    IntakeEventHandler handler(store_);
    const common::Dedupe dedupe{absl::StrCat("seen:", e.event_id()), "60000"};
    return testing::Await<common::EventHandler::Outcome>(
        [&](auto done) { handler.Handle(e, dedupe, std::move(done)); });
  }
  pb::Event Reported(const std::string& id, const std::string& event_id, pb::EventType type,
                     pb::RequestStatus status) {
    pb::Event e;
    e.set_event_id(event_id);
    e.set_request_id(id);
    e.set_source("routing");
    e.set_sequence(1);
    e.set_type(type);
    e.set_status(status);
    e.set_trace_id("0123456789abcdef0123456789abcdef");
    e.mutable_actor()->set_service("rogatory-routing");
    *e.mutable_occur_time() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(
        absl::ToUnixMillis(h_.clock().Now()));
    return e;
  }

  InMemoryRequestStore store_;
  IntakeHarness h_{store_};
};

TEST_F(ChangesTest, SupplementCompletesAnIncompleteRequestAndRecordsWhatChanged) {
  const v1::Request r = SubmitIncompleteEio();
  v1::SupplementRequestRequest req;
  req.set_request_id("s-1");
  req.set_id(r.id());
  req.set_etag(r.etag());
  auto* m = req.mutable_content()->add_measures();
  m->set_type(v1::MEASURE_TYPE_HEARING);
  req.mutable_content()->mutable_safeguards()->set_dual_criminality(
      v1::SAFEGUARD_ASSESSMENT_CLEARED);
  req.mutable_update_mask()->add_paths("measures");
  req.mutable_update_mask()->add_paths("safeguards");
  h_.clock().Advance(absl::Minutes(5));
  v1::Request after;
  grpc::Status s = h_.Supplement(req, &after);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(after.status(), pb::REQUEST_STATUS_RECEIVED);
  EXPECT_EQ(after.missing_elements_size(), 0);
  EXPECT_EQ(after.etag(), "2");
  EXPECT_EQ(after.content().measures_size(), 1);
  EXPECT_EQ(after.content().safeguards().dual_criminality(), v1::SAFEGUARD_ASSESSMENT_CLEARED);
  // Untouched fields stay.
  EXPECT_EQ(after.content().subjects(0).family_name(), "Testperson");

  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.status(), pb::REQUEST_STATUS_RECEIVED);
  EXPECT_EQ(got.content().measures_size(), 1);

  const auto history = h_.History(r.id());
  ASSERT_EQ(history.size(), 2u);
  const pb::Event& e = history[1];
  EXPECT_EQ(e.type(), pb::EVENT_TYPE_REQUEST_SUPPLEMENTED);
  EXPECT_EQ(e.status(), pb::REQUEST_STATUS_RECEIVED);
  EXPECT_EQ(e.previous_status(), pb::REQUEST_STATUS_INCOMPLETE);
  EXPECT_EQ(e.sequence(), 2);
  EXPECT_EQ(std::set<std::string>(e.status_change().changed_fields().begin(),
                                  e.status_change().changed_fields().end()),
            (std::set<std::string>{"content.measures", "content.safeguards.dual_criminality"}));

  // The same call again replays; the key with another payload is ALREADY_EXISTS.
  v1::Request replay;
  ASSERT_TRUE(h_.Supplement(req, &replay).ok());
  EXPECT_EQ(replay.etag(), "2");
  req.mutable_update_mask()->add_paths("urgency");
  EXPECT_EQ(h_.Supplement(req, nullptr).error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(ChangesTest, SupplementStillMissingSomethingStaysIncomplete) {
  v1::RequestContent c = testing::CompleteEio();
  c.set_instrument(pb::INSTRUMENT_EAW);
  c.mutable_eaw();
  v1::Request r;
  ASSERT_TRUE(h_.Submit(c, "", &r).ok());
  ASSERT_EQ(r.status(), pb::REQUEST_STATUS_INCOMPLETE);
  v1::SupplementRequestRequest req;
  req.set_id(r.id());
  req.mutable_content()->mutable_eaw()->set_purpose(v1::WARRANT_PURPOSE_PROSECUTION);
  req.mutable_content()->mutable_eaw()->set_underlying_decision_reference("W 1/2026");
  req.mutable_update_mask()->add_paths("eaw");
  v1::Request after;
  ASSERT_TRUE(h_.Supplement(req, &after).ok());
  EXPECT_EQ(after.status(), pb::REQUEST_STATUS_INCOMPLETE);
  std::set<std::string> missing;
  for (const auto& m : after.missing_elements()) missing.insert(m.code());
  EXPECT_EQ(missing, std::set<std::string>{"REQUESTED_PERSON_REQUIRED"});
}

TEST_F(ChangesTest, SupplementCannotChangeInstrumentOrBreakTheContent) {
  const v1::Request r = SubmitIncompleteEio();
  v1::SupplementRequestRequest req;
  req.set_id(r.id());
  req.mutable_content()->set_instrument(pb::INSTRUMENT_EAW);
  req.mutable_update_mask()->add_paths("instrument");
  req.mutable_update_mask()->add_paths("no_such_field");
  grpc::Status s = h_.Supplement(req, nullptr);
  EXPECT_EQ(IntakeHarness::BadFields(s),
            (std::set<std::string>{"update_mask.paths[0]", "update_mask.paths[1]"}));
  // A supplement that makes the content malformed names the content's field paths.
  v1::SupplementRequestRequest bad;
  bad.set_id(r.id());
  // (The requested state, which this test used to break, is fixed after submission.)
  bad.mutable_content()->set_source_language("french");
  bad.mutable_update_mask()->add_paths("source_language");
  bad.mutable_update_mask()->add_paths("mla");
  bad.mutable_content()->mutable_mla();
  EXPECT_EQ(IntakeHarness::BadFields(h_.Supplement(bad, nullptr)),
            (std::set<std::string>{"content.source_language", "content.details"}));
  // Only the issuer side may supplement.
  v1::SupplementRequestRequest ok;
  ok.set_id(r.id());
  ok.mutable_content()->add_measures()->set_type(v1::MEASURE_TYPE_HEARING);
  ok.mutable_update_mask()->add_paths("measures");
  EXPECT_EQ(h_.Supplement(ok, nullptr, testing::kExecutor).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ChangesTest, WithdrawEndsTheRequestOnceAndOnlyForTheIssuer) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EAW);
  v1::WithdrawRequestRequest req;
  req.set_request_id("w-1");
  req.set_id(r.id());
  req.set_reason_code("PERSON_LOCATED_ELSEWHERE");
  EXPECT_EQ(h_.Withdraw(req, nullptr, testing::kExecutor).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::Request after;
  ASSERT_TRUE(h_.Withdraw(req, &after).ok());
  EXPECT_EQ(after.status(), pb::REQUEST_STATUS_WITHDRAWN);
  ASSERT_TRUE(h_.Withdraw(req, &after).ok());  // replay
  req.set_request_id("w-2");
  grpc::Status again = h_.Withdraw(req, nullptr);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  const auto history = h_.History(r.id());
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].type(), pb::EVENT_TYPE_REQUEST_WITHDRAWN);
  EXPECT_EQ(history[1].reason_code(), "PERSON_LOCATED_ELSEWHERE");
  EXPECT_EQ(history[1].actor().role(), pb::AUTHORITY_ROLE_ISSUING);
  // Closed requests cannot be supplemented.
  ASSERT_TRUE(h_.Move(r.id(), pb::REQUEST_STATUS_CLOSED).ok());
  v1::SupplementRequestRequest sup;
  sup.set_id(r.id());
  sup.mutable_update_mask()->add_paths("measures");
  sup.mutable_content();
  EXPECT_EQ(h_.Supplement(sup, nullptr).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ChangesTest, HistoryShowsEveryChangeInOrderWithActorAndReasonAcrossPages) {
  const v1::Request r = SubmitIncompleteEio();
  v1::SupplementRequestRequest sup;
  sup.set_id(r.id());
  sup.mutable_content()->add_measures()->set_type(v1::MEASURE_TYPE_HEARING);
  sup.mutable_update_mask()->add_paths("measures");
  h_.clock().Advance(absl::Hours(1));
  ASSERT_TRUE(h_.Supplement(sup, nullptr).ok());
  const std::vector<std::pair<pb::RequestStatus, std::string>> steps = {
      {pb::REQUEST_STATUS_TRANSLATION_PENDING, "TRANSLATION_NEEDED"},
      {pb::REQUEST_STATUS_FORWARDED, "COMPETENT_AUTHORITY_FOUND"},
      {pb::REQUEST_STATUS_RECOGNISED, "NO_GROUNDS"},
      {pb::REQUEST_STATUS_IN_EXECUTION, "STARTED"},
      {pb::REQUEST_STATUS_EXECUTED, "EVIDENCE_SENT"},
      {pb::REQUEST_STATUS_CLOSED, "DONE"}};
  for (const auto& [to, reason] : steps) {
    h_.clock().Advance(absl::Hours(1));
    ASSERT_TRUE(h_.Move(r.id(), to, nullptr, reason).ok()) << reason;
  }
  int pages = 0;
  const auto history = h_.History(r.id(), 3, &pages);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(history.size(), 8u);
  EXPECT_EQ(history[0].type(), pb::EVENT_TYPE_REQUEST_SUBMITTED);
  EXPECT_EQ(history[0].actor().authority().authority_id(), "FR-TJ-PARIS-JI");
  EXPECT_EQ(history[1].type(), pb::EVENT_TYPE_REQUEST_SUPPLEMENTED);
  EXPECT_EQ(history[1].actor().authority().authority_id(), "FR-TJ-PARIS-JI");
  for (size_t i = 0; i < steps.size(); ++i) {
    const pb::Event& e = history[i + 2];
    EXPECT_EQ(e.status(), steps[i].first);
    EXPECT_EQ(e.reason_code(), steps[i].second);
    EXPECT_EQ(e.actor().authority().authority_id(), "DE-GSTA-FRANKFURT");
  }
  for (size_t i = 1; i < history.size(); ++i) {
    EXPECT_EQ(history[i].sequence(), static_cast<int64_t>(i + 1));
    EXPECT_LT(history[i - 1].occur_time().seconds(), history[i].occur_time().seconds());
  }
  // A token for another request is refused.
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  v1::GetRequestHistoryRequest req;
  req.set_id(h_.SubmitComplete(pb::INSTRUMENT_EIO).id());
  req.set_page_token(EncodeHistoryToken(3, r.id()));
  v1::GetRequestHistoryResponse resp;
  EXPECT_EQ(h_.stub().GetRequestHistory(&ctx, req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ChangesTest, ReportedStatusFollowsTheLifecycleAndIsAnnouncedOnce) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  pb::Event decided = Reported(r.id(), "01jevent000000000000000000a",
                               pb::EVENT_TYPE_ROUTING_DECIDED, pb::REQUEST_STATUS_FORWARDED);
  decided.mutable_routing_decided()->mutable_competent_authority()->set_authority_id(
      "DE-STA-FRANKFURT");
  decided.mutable_routing_decided()->mutable_competent_authority()->set_state("DE");
  auto first = Report(decided);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, common::EventHandler::Outcome::kHandled);
  EXPECT_EQ(*Report(decided), common::EventHandler::Outcome::kDuplicate);
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.status(), pb::REQUEST_STATUS_FORWARDED);
  EXPECT_EQ(got.etag(), "2");
  EXPECT_EQ(got.executing_authority().authority_id(), "DE-STA-FRANKFURT");

  // Intake announced the move under its trigger name, with the reporter's trace.
  std::vector<pb::Event> announced;
  for (const auto& e : store_.Outbox()) {
    if (e.request_id() == r.id() && e.sequence() > 1) announced.push_back(e);
  }
  ASSERT_EQ(announced.size(), 1u);
  EXPECT_EQ(announced[0].type(), pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY);
  EXPECT_EQ(announced[0].sequence(), 2);
  EXPECT_EQ(announced[0].previous_status(), pb::REQUEST_STATUS_RECEIVED);
  EXPECT_EQ(announced[0].trace_id(), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(announced[0].request().executing_authority().authority_id(), "DE-STA-FRANKFURT");

  // A status the lifecycle does not allow from FORWARDED is recorded, not applied.
  pb::Event illegal = Reported(r.id(), "01jevent000000000000000000b",
                               pb::EVENT_TYPE_DEADLINE_MISSED, pb::REQUEST_STATUS_SURRENDERED);
  ASSERT_TRUE(Report(illegal).ok());
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.status(), pb::REQUEST_STATUS_FORWARDED);
  EXPECT_EQ(got.etag(), "2");
  const auto history = h_.History(r.id());
  ASSERT_EQ(history.size(), 4u);
  // What routing reported, then the status change under its trigger name: the event the
  // outbox announced.
  EXPECT_EQ(history[1].type(), pb::EVENT_TYPE_ROUTING_DECIDED);
  EXPECT_EQ(history[1].status(), pb::REQUEST_STATUS_UNSPECIFIED);
  EXPECT_EQ(history[1].routing_decided().competent_authority().authority_id(), "DE-STA-FRANKFURT");
  EXPECT_EQ(history[2].type(), pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY);
  EXPECT_EQ(history[2].event_id(), announced[0].event_id());
  EXPECT_EQ(history[2].status(), pb::REQUEST_STATUS_FORWARDED);
  EXPECT_EQ(history[2].previous_status(), pb::REQUEST_STATUS_RECEIVED);
  EXPECT_EQ(history[3].type(), pb::EVENT_TYPE_DEADLINE_MISSED);
  EXPECT_EQ(history[3].status(), pb::REQUEST_STATUS_UNSPECIFIED);
  EXPECT_EQ(history[3].reason_code(), "STATUS_NOT_APPLIED:REQUEST_STATUS_SURRENDERED");
}

// A production order routed to the provider's addressee names the enforcing state's
// authority to be told (Reg. 2023/1543 Art 8): intake records it from the decision as it
// records the executing authority; it reads the request and may object, and makes no other
// move.
TEST_F(ChangesTest, NotifiedEnforcingAuthorityReadsTheProductionOrderAndMayOnlyObject) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_PRODUCTION_ORDER);
  pb::Event decided = Reported(r.id(), "01jevent000000000000000000d",
                               pb::EVENT_TYPE_ROUTING_DECIDED, pb::REQUEST_STATUS_SENT_TO_PROVIDER);
  auto* addressee = decided.mutable_routing_decided()->mutable_competent_authority();
  addressee->set_authority_id("IE-PROVIDER-LEGALREP");
  addressee->set_state("IE");
  auto* notified = decided.mutable_routing_decided()->mutable_notified_authority();
  notified->set_authority_id("IE-EPOC-ENFORCING-AUTHORITY");
  notified->set_state("IE");
  ASSERT_TRUE(Report(decided).ok());
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.status(), pb::REQUEST_STATUS_SENT_TO_PROVIDER);
  EXPECT_EQ(got.executing_authority().authority_id(), "IE-PROVIDER-LEGALREP");
  EXPECT_EQ(got.notified_authority().authority_id(), "IE-EPOC-ENFORCING-AUTHORITY");
  // The facts intake announces name it, so the other services know it as a party.
  bool announced = false;
  for (const auto& e : store_.Outbox()) {
    if (e.request_id() == r.id() && e.type() == pb::EVENT_TYPE_SENT_TO_PROVIDER) {
      announced = true;
      EXPECT_EQ(e.request().notified_authority().authority_id(), "IE-EPOC-ENFORCING-AUTHORITY");
    }
  }
  EXPECT_TRUE(announced);

  const testing::CallerId enforcing{"IE-EPOC-ENFORCING-AUTHORITY", "IE", "executing"};
  const testing::CallerId stranger{"IE-OTHER-AUTHORITY", "IE", "executing"};
  auto get_as = [&](const testing::CallerId& who) {
    grpc::ClientContext ctx;
    IntakeHarness::As(&ctx, who);
    v1::GetRequestRequest req;
    req.set_id(r.id());
    v1::GetRequestResponse resp;
    return h_.stub().GetRequest(&ctx, req, &resp).error_code();
  };
  EXPECT_EQ(get_as(enforcing), grpc::StatusCode::OK);
  EXPECT_EQ(get_as(stranger), grpc::StatusCode::NOT_FOUND);

  v1::TransitionRequestRequest produce;
  produce.set_id(r.id());
  produce.set_target_status(pb::REQUEST_STATUS_DATA_PRODUCED);
  EXPECT_EQ(h_.Transition(produce, nullptr, enforcing).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::TransitionRequestRequest object = produce;
  object.set_target_status(pb::REQUEST_STATUS_OBJECTED);
  EXPECT_EQ(h_.Transition(object, nullptr, stranger).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::Request objected;
  grpc::Status s = h_.Transition(object, &objected, enforcing);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(objected.status(), pb::REQUEST_STATUS_OBJECTED);
}

// Issue 22 item 8: after a translation the history names the forwarding as the event the
// recognition limit is counted from, not only as the job's completion.
TEST_F(ChangesTest, ForwardingAfterTranslationIsInTheHistoryUnderItsTriggerName) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  ASSERT_TRUE(h_.Move(r.id(), pb::REQUEST_STATUS_TRANSLATION_PENDING).ok());
  h_.clock().Advance(absl::Hours(30));
  pb::Event completed =
      Reported(r.id(), "01jevent000000000000000000c", pb::EVENT_TYPE_TRANSLATION_JOB_COMPLETED,
               pb::REQUEST_STATUS_FORWARDED);
  completed.mutable_translation_job()->set_job_id("tj-1");
  ASSERT_TRUE(Report(completed).ok());

  const auto history = h_.History(r.id());
  ASSERT_EQ(history.size(), 4u);
  EXPECT_EQ(history[2].type(), pb::EVENT_TYPE_TRANSLATION_JOB_COMPLETED);
  EXPECT_EQ(history[2].status(), pb::REQUEST_STATUS_UNSPECIFIED);
  EXPECT_EQ(history[2].previous_status(), pb::REQUEST_STATUS_UNSPECIFIED);
  const pb::Event& forwarded = history[3];
  EXPECT_EQ(forwarded.type(), pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY);
  EXPECT_EQ(forwarded.status(), pb::REQUEST_STATUS_FORWARDED);
  EXPECT_EQ(forwarded.previous_status(), pb::REQUEST_STATUS_TRANSLATION_PENDING);
  EXPECT_EQ(forwarded.source(), "intake");
  EXPECT_EQ(forwarded.sequence(), 3);  // intake's own sequence: the request's version
  EXPECT_EQ(forwarded.occur_time().seconds(), completed.occur_time().seconds());
  // The same event, announced once, in the same step.
  std::vector<pb::Event> announced;
  for (const auto& e : store_.Outbox()) {
    if (e.request_id() == r.id() &&
        e.type() == pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY) {
      announced.push_back(e);
    }
  }
  ASSERT_EQ(announced.size(), 1u);
  EXPECT_EQ(announced[0].event_id(), forwarded.event_id());
  // A status change is an entry of its own: exactly one entry says FORWARDED came after
  // TRANSLATION_PENDING.
  std::vector<pb::RequestStatus> statuses;
  for (const auto& e : history) {
    if (e.status() != pb::REQUEST_STATUS_UNSPECIFIED) statuses.push_back(e.status());
  }
  EXPECT_EQ(statuses, (std::vector<pb::RequestStatus>{pb::REQUEST_STATUS_RECEIVED,
                                                      pb::REQUEST_STATUS_TRANSLATION_PENDING,
                                                      pb::REQUEST_STATUS_FORWARDED}));
}

TEST_F(ChangesTest, ListRequestsByUrgencyTimeRangeAndLastUpdate) {
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    v1::RequestContent c = testing::CompleteEio();
    if (i % 2 == 1) c.set_urgency(pb::URGENCY_URGENT);
    v1::Request r;
    ASSERT_TRUE(h_.Submit(c, "", &r).ok());
    ids.push_back(r.id());
    h_.clock().Advance(absl::Minutes(1));
  }
  ASSERT_TRUE(h_.Move(ids[0], pb::REQUEST_STATUS_FORWARDED).ok());  // the oldest changes last
  auto list = [&](v1::ListRequestsRequest req, grpc::Status* status = nullptr) {
    grpc::ClientContext ctx;
    IntakeHarness::As(&ctx, testing::kIssuer);
    v1::ListRequestsResponse resp;
    grpc::Status s = h_.stub().ListRequests(&ctx, req, &resp);
    if (status != nullptr) *status = s;
    std::vector<std::string> out;
    for (const auto& r : resp.requests()) out.push_back(r.id());
    return out;
  };
  v1::ListRequestsRequest urgent;
  urgent.set_urgency(pb::URGENCY_URGENT);
  EXPECT_EQ(list(urgent), (std::vector<std::string>{ids[3], ids[1]}));
  v1::ListRequestsRequest by_update;
  by_update.set_order_by(v1::REQUEST_ORDER_UPDATE_TIME_DESC);
  EXPECT_EQ(list(by_update), (std::vector<std::string>{ids[0], ids[3], ids[2], ids[1]}));
  v1::ListRequestsRequest range;
  *range.mutable_create_time_from() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(1767225600 + 60);
  *range.mutable_create_time_to() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(1767225600 + 180);
  EXPECT_EQ(list(range), (std::vector<std::string>{ids[2], ids[1]}));
  v1::ListRequestsRequest bad = range;
  std::swap(*bad.mutable_create_time_from(), *bad.mutable_create_time_to());
  bad.set_order_by(static_cast<v1::RequestOrder>(9));
  grpc::Status s;
  list(bad, &s);
  EXPECT_EQ(IntakeHarness::BadFields(s), (std::set<std::string>{"create_time_to", "order_by"}));
}

}  // namespace
}  // namespace rogatory::intake
