// Issue 16, items 2 to 4: who may move a request to which status (every role against every
// target status of every instrument), what a supplement may not change, and in which
// state's name an authority may file a request. Through a real in-process gRPC server on the
// in-memory store. The expected outcomes are written out here from the issue, not read from
// the lifecycle table they check.
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "in_memory_request_store.h"
#include "intake_event_handler.h"
#include "intake_harness.h"
#include "intake_walk.h"
#include "lifecycle.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;
using testing::CallerId;
using testing::IntakeHarness;

// The walk's parties (tests/support/intake_walk.h).
using Role = testing::WalkRole;
using Party = testing::WalkParty;
using testing::kServiceCaller;
using testing::TransitionTo;
const std::vector<Party>& Parties() { return testing::WalkParties(); }

enum class Want { kOk, kNotFound, kDenied, kInvalid };
const char* Name(Want w) {
  switch (w) {
    case Want::kOk:
      return "OK";
    case Want::kNotFound:
      return "NOT_FOUND";
    case Want::kDenied:
      return "PERMISSION_DENIED";
    case Want::kInvalid:
      return "INVALID_ARGUMENT";
  }
  return "?";
}
grpc::StatusCode Code(Want w) {
  switch (w) {
    case Want::kOk:
      return grpc::StatusCode::OK;
    case Want::kNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case Want::kDenied:
      return grpc::StatusCode::PERMISSION_DENIED;
    case Want::kInvalid:
      return grpc::StatusCode::INVALID_ARGUMENT;
  }
  return grpc::StatusCode::UNKNOWN;
}

bool Reaches(pb::Instrument instrument, Role role) {
  switch (role) {
    case Role::kStranger:
    case Role::kOperator:
    case Role::kTranslator:
      return false;
    case Role::kNotified:
      return instrument == pb::INSTRUMENT_PRODUCTION_ORDER;
    default:
      return true;
  }
}

bool ExecutingSide(Role role) {
  return role == Role::kExecutor || role == Role::kRequestedCentral || role == Role::kService;
}
bool IssuingSide(Role role) {
  return role == Role::kIssuer || role == Role::kIssuingCentral || role == Role::kService;
}

// TransitionRequest to `target`, as the issue states it: the acknowledgment has its own RPC
// (INVALID_ARGUMENT for everyone); the withdrawal is the issuer's, with WithdrawRequest, so
// nobody makes it here; a production order's enforcing authority may object; every other
// move is the executing side's (or a service's).
Want WantTransition(pb::Instrument instrument, pb::RequestStatus target, Role role) {
  if (target == pb::REQUEST_STATUS_ACKNOWLEDGED) return Want::kInvalid;
  if (!Reaches(instrument, role)) return Want::kNotFound;
  if (target == pb::REQUEST_STATUS_WITHDRAWN) return Want::kDenied;
  if (target == pb::REQUEST_STATUS_OBJECTED && role == Role::kNotified) return Want::kOk;
  return ExecutingSide(role) ? Want::kOk : Want::kDenied;
}
Want WantWithdraw(pb::Instrument instrument, Role role) {
  if (!Reaches(instrument, role)) return Want::kNotFound;
  return IssuingSide(role) ? Want::kOk : Want::kDenied;
}
Want WantAcknowledge(pb::Instrument instrument, Role role) {
  if (!Reaches(instrument, role)) return Want::kNotFound;
  return ExecutingSide(role) ? Want::kOk : Want::kDenied;
}

class TransitionSidesTest : public ::testing::Test {
 protected:
  // A fresh complete request of `instrument` with the walk's parties, moved (as a service)
  // along the shortest path of the table to a status from which `target` can be reached.
  // Sets prepare_failed_ when it could not.
  v1::Request Prepare(pb::Instrument instrument, pb::RequestStatus target) {
    v1::Request r;
    grpc::Status s = h_.Submit(IntakeHarness::CompleteContent(instrument), "", &r);
    if (!s.ok()) {
      ADD_FAILURE() << "submit: " << s.error_message();
      prepare_failed_ = true;
      return r;
    }
    testing::NameWalkParties(store_, h_.clock().Now(), r.id(),
                             instrument == pb::INSTRUMENT_PRODUCTION_ORDER);
    if (!h_.Get(r.id(), &r).ok()) prepare_failed_ = true;
    for (pb::RequestStatus step : PathTo(instrument, target)) {
      s = testing::StepAsService(h_, r.id(), step, &r);
      if (!s.ok()) {
        ADD_FAILURE() << pb::Instrument_Name(instrument) << " on the way to "
                      << pb::RequestStatus_Name(target) << ", " << pb::RequestStatus_Name(step)
                      << ": " << s.error_message();
        prepare_failed_ = true;
        return r;
      }
    }
    return r;
  }

  // The statuses to pass through from RECEIVED to reach one with a move to `target`.
  static std::vector<pb::RequestStatus> PathTo(pb::Instrument instrument,
                                               pb::RequestStatus target) {
    auto path = testing::ShortestWalk(instrument, [&](pb::RequestStatus at) {
      return Lifecycle::Default().Find(instrument, at, target).has_value();
    });
    if (!path) ADD_FAILURE() << "no path to " << pb::RequestStatus_Name(target);
    return path.value_or(std::vector<pb::RequestStatus>{});
  }

  // Checks one call's outcome and that the request moved exactly when it was let through.
  void Check(const std::string& where, const grpc::Status& s, Want want, const v1::Request& before,
             pb::RequestStatus target, const std::string& side_named) {
    ++cells_;
    EXPECT_EQ(s.error_code(), Code(want)) << where << ": want " << Name(want) << ", got "
                                          << s.error_code() << " " << s.error_message();
    v1::Request now;
    ASSERT_TRUE(h_.Get(before.id(), &now).ok());
    if (want == Want::kOk) {
      EXPECT_EQ(now.status(), target) << where;
    } else {
      EXPECT_EQ(now.etag(), before.etag()) << where << ": the request changed";
    }
    if (want == Want::kDenied && s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      EXPECT_NE(s.error_message().find(side_named), std::string::npos)
          << where << ": the refusal should name " << side_named << ": " << s.error_message();
    }
  }

  // The statuses some move of the instrument's table leads to.
  static std::set<pb::RequestStatus> Targets(pb::Instrument instrument) {
    std::set<pb::RequestStatus> out;
    for (pb::RequestStatus from : Lifecycle::Default().Statuses(instrument)) {
      for (const Move& m : Lifecycle::Default().MovesFrom(instrument, from)) out.insert(m.to);
    }
    return out;
  }

  InMemoryRequestStore store_;
  IntakeHarness h_{store_};
  int cells_ = 0;
  bool prepare_failed_ = false;
};

TEST_F(TransitionSidesTest, EveryRoleAgainstEveryTargetStatusOfEveryInstrument) {
  const std::vector<pb::Instrument> instruments = {pb::INSTRUMENT_MLA,
                                                   pb::INSTRUMENT_EIO,
                                                   pb::INSTRUMENT_EAW,
                                                   pb::INSTRUMENT_EXTRADITION,
                                                   pb::INSTRUMENT_PROVISIONAL_ARREST,
                                                   pb::INSTRUMENT_FREEZING_ORDER,
                                                   pb::INSTRUMENT_PRODUCTION_ORDER};
  int withdrawals = 0, acknowledgments = 0;
  for (pb::Instrument instrument : instruments) {
    const std::set<pb::RequestStatus> targets = Targets(instrument);
    ASSERT_GE(targets.size(), 5u) << pb::Instrument_Name(instrument);
    for (pb::RequestStatus target : targets) {
      for (const Party& party : Parties()) {
        const std::string where =
            absl::StrCat(pb::Instrument_Name(instrument), " -> ", pb::RequestStatus_Name(target),
                         " by the ", party.name);
        const std::string side =
            target == pb::REQUEST_STATUS_WITHDRAWN ? "issuing side" : "executing side";
        {
          const v1::Request before = Prepare(instrument, target);
          if (prepare_failed_ || HasFatalFailure()) return;
          const grpc::Status s =
              h_.Transition(TransitionTo(before.id(), target), nullptr, party.who);
          Check(absl::StrCat("TransitionRequest ", where), s,
                WantTransition(instrument, target, party.role), before, target, side);
        }
        if (target == pb::REQUEST_STATUS_WITHDRAWN) {
          const v1::Request before = Prepare(instrument, target);
          if (prepare_failed_ || HasFatalFailure()) return;
          v1::WithdrawRequestRequest w;
          w.set_id(before.id());
          Check(absl::StrCat("WithdrawRequest ", where), h_.Withdraw(w, nullptr, party.who),
                WantWithdraw(instrument, party.role), before, target, "issuing side");
          ++withdrawals;
        }
        if (target == pb::REQUEST_STATUS_ACKNOWLEDGED) {
          const v1::Request before = Prepare(instrument, target);
          if (prepare_failed_ || HasFatalFailure()) return;
          Check(absl::StrCat("AcknowledgeRequest ", where),
                h_.Acknowledge(before.id(), nullptr, party.who),
                WantAcknowledge(instrument, party.role), before, target, "executing side");
          ++acknowledgments;
        }
      }
    }
  }
  // Every instrument can be withdrawn; only the EIO is acknowledged.
  EXPECT_EQ(withdrawals, 7 * static_cast<int>(Parties().size()));
  EXPECT_EQ(acknowledgments, static_cast<int>(Parties().size()));
  EXPECT_GT(cells_, 900);
}

TEST_F(TransitionSidesTest, ExecutingSideCannotCallARequestWithdrawn) {
  const v1::Request r = Prepare(pb::INSTRUMENT_EIO, pb::REQUEST_STATUS_RECOGNISED);
  ASSERT_EQ(r.status(), pb::REQUEST_STATUS_FORWARDED);
  const grpc::Status s = h_.Transition(TransitionTo(r.id(), pb::REQUEST_STATUS_WITHDRAWN), nullptr,
                                       testing::kExecutor);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("WithdrawRequest"), std::string::npos) << s.error_message();
  v1::Request now;
  ASSERT_TRUE(h_.Get(r.id(), &now).ok());
  EXPECT_EQ(now.status(), pb::REQUEST_STATUS_FORWARDED);
}

// The table itself: every move names who makes it, and the three exceptions are as the
// issue states them.
TEST(LifecycleCausesTest, EveryMoveNamesTheSideThatCausesIt) {
  const Lifecycle& l = Lifecycle::Default();
  for (int i = pb::Instrument_MIN; i <= pb::Instrument_MAX; ++i) {
    if (!pb::Instrument_IsValid(i) || i == pb::INSTRUMENT_UNSPECIFIED) continue;
    const auto instrument = static_cast<pb::Instrument>(i);
    for (pb::RequestStatus from : l.Statuses(instrument)) {
      for (const Move& m : l.MovesFrom(instrument, from)) {
        const std::string where =
            absl::StrCat(pb::Instrument_Name(instrument), " ", pb::RequestStatus_Name(from), " -> ",
                         pb::RequestStatus_Name(m.to));
        ASSERT_NE(m.by.sides, 0u) << where;
        EXPECT_NE(m.by.sides & kService, 0u) << where;
        ASSERT_TRUE(l.CauseOf(instrument, m.to).has_value()) << where;
        if (m.to == pb::REQUEST_STATUS_WITHDRAWN) {
          EXPECT_EQ(m.by.sides, kIssuingSide | kService) << where;
          EXPECT_EQ(m.by.via, Via::kWithdrawRequest) << where;
        } else if (m.to == pb::REQUEST_STATUS_ACKNOWLEDGED) {
          EXPECT_EQ(m.by.sides, kExecutingSide | kService) << where;
          EXPECT_EQ(m.by.via, Via::kAcknowledgeRequest) << where;
        } else if (m.to == pb::REQUEST_STATUS_OBJECTED) {
          EXPECT_EQ(m.by.sides, kExecutingSide | kNotifiedAuthority | kService) << where;
          EXPECT_EQ(m.by.via, Via::kTransitionRequest) << where;
        } else {
          EXPECT_EQ(m.by.sides, kExecutingSide | kService) << where;
          EXPECT_EQ(m.by.via, Via::kTransitionRequest) << where;
        }
      }
    }
    // Submission and supplement set RECEIVED; no caller moves a request there.
    EXPECT_FALSE(l.CauseOf(instrument, pb::REQUEST_STATUS_RECEIVED).has_value());
  }
}

// A service reports what it decided; a withdrawal is the issuer's and never made by report.
TEST(ReportedStatusTest, ReportedWithdrawalIsRecordedButNotApplied) {
  InMemoryRequestStore store;
  IntakeHarness h{store};
  const v1::Request r = h.SubmitComplete(pb::INSTRUMENT_EIO);
  pb::Event e;
  e.set_event_id("01jevent00000000000000000wd");
  e.set_request_id(r.id());
  e.set_source("routing");
  e.set_type(pb::EVENT_TYPE_REQUEST_WITHDRAWN);
  e.set_status(pb::REQUEST_STATUS_WITHDRAWN);
  e.mutable_actor()->set_service("rogatory-routing");
  e.mutable_occur_time()->set_seconds(1'790'000'100);
  IntakeEventHandler handler(store);
  auto outcome = testing::Await<common::EventHandler::Outcome>([&](auto done) {
    handler.Handle(e, common::Dedupe{"seen:wd", "60000"}, std::move(done));
  });
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  v1::Request now;
  ASSERT_TRUE(h.Get(r.id(), &now).ok());
  EXPECT_EQ(now.status(), pb::REQUEST_STATUS_RECEIVED);
  const auto history = h.History(r.id());
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].reason_code(), "STATUS_NOT_APPLIED:REQUEST_STATUS_WITHDRAWN");
}

// ---- Item 2: supplements do not rewrite ownership ------------------------------------

class SupplementFixedFieldsTest : public ::testing::Test {
 protected:
  grpc::Status Supplement(const std::string& id, const v1::RequestContent& content,
                          std::vector<std::string> paths, const CallerId& who = testing::kIssuer,
                          v1::Request* out = nullptr) {
    v1::SupplementRequestRequest req;
    req.set_id(id);
    *req.mutable_content() = content;
    for (auto& p : paths) req.mutable_update_mask()->add_paths(std::move(p));
    return h_.Supplement(req, out, who);
  }
  void ExpectUnchanged(const v1::Request& before) {
    v1::Request now;
    ASSERT_TRUE(h_.Get(before.id(), &now).ok());
    EXPECT_EQ(now.etag(), before.etag());
    EXPECT_EQ(now.content().issuing_authority().authority_id(),
              before.content().issuing_authority().authority_id());
    EXPECT_EQ(now.content().requested_state(), before.content().requested_state());
  }

  InMemoryRequestStore store_;
  IntakeHarness h_{store_};
};

TEST_F(SupplementFixedFieldsTest, IssuingAuthorityRequestedStateAndInstrumentAreFixed) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  v1::RequestContent other = IntakeHarness::CompleteContent(pb::INSTRUMENT_EIO);
  other.mutable_issuing_authority()->set_authority_id("BE-PARQUET-BRUXELLES");
  other.mutable_issuing_authority()->set_state("BE");
  other.set_requested_state("NL");
  other.set_instrument(pb::INSTRUMENT_MLA);
  for (const std::string path : {"issuing_authority", "requested_state", "instrument"}) {
    const grpc::Status s = Supplement(r.id(), other, {path});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << path;
    EXPECT_EQ(IntakeHarness::BadFields(s), std::set<std::string>{"update_mask.paths[0]"}) << path;
    EXPECT_NE(s.error_message().find("content." + path), std::string::npos) << s.error_message();
    ExpectUnchanged(r);
  }
  // Among other paths too, and whatever the value: the same authority again is no change
  // of owner but still not a field a supplement sets.
  const grpc::Status s = Supplement(r.id(), r.content(), {"urgency", "issuing_authority"});
  EXPECT_EQ(IntakeHarness::BadFields(s), std::set<std::string>{"update_mask.paths[1]"});
  ExpectUnchanged(r);
}

TEST_F(SupplementFixedFieldsTest, ProductionOrderKeepsItsAddresseeAndEnforcingState) {
  v1::RequestContent content = IntakeHarness::CompleteContent(pb::INSTRUMENT_PRODUCTION_ORDER);
  content.mutable_production_order()->set_enforcing_state("IE");
  v1::Request r;
  ASSERT_TRUE(h_.Submit(content, "", &r).ok());

  v1::RequestContent moved = content;
  moved.mutable_production_order()->mutable_service_provider()->set_authority_id(
      "NL-PROVIDER-LEGALREP");
  moved.mutable_production_order()->mutable_service_provider()->set_state("NL");
  moved.mutable_production_order()->set_enforcing_state("NL");
  const grpc::Status s = Supplement(r.id(), moved, {"production_order"});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(IntakeHarness::BadFields(s),
            (std::set<std::string>{"content.production_order.service_provider",
                                   "content.production_order.enforcing_state"}));
  ExpectUnchanged(r);

  // The order's other details may still be supplemented.
  v1::RequestContent more = content;
  more.mutable_production_order()->add_data_categories(v1::DATA_CATEGORY_TRAFFIC);
  v1::Request after;
  const grpc::Status ok = Supplement(r.id(), more, {"production_order"}, testing::kIssuer, &after);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(after.content().production_order().data_categories_size(), 2);
}

TEST_F(SupplementFixedFieldsTest, MergedContentPassesTheSubmissionChecksAgain) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  v1::RequestContent urgent;
  urgent.set_urgency(pb::URGENCY_URGENT);
  // The issuing authority itself, but with credentials of another state: it could not
  // submit this request now, so it cannot change it either.
  const CallerId elsewhere{"FR-TJ-PARIS-JI", "IT", "issuing"};
  const grpc::Status s = Supplement(r.id(), urgent, {"urgency"}, elsewhere);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("content.issuing_authority.state"), std::string::npos)
      << s.error_message();
  ExpectUnchanged(r);
  // With its own state's credentials it can.
  v1::Request after;
  ASSERT_TRUE(Supplement(r.id(), urgent, {"urgency"}, testing::kIssuer, &after).ok());
  EXPECT_EQ(after.content().urgency(), pb::URGENCY_URGENT);
}

// ---- Item 4: an authority files requests in its own state's name ----------------------

TEST(SubmitIssuingStateTest, IssuingStateMustBeTheCallersStateClaim) {
  InMemoryRequestStore store;
  IntakeHarness h{store};
  // content.issuing_authority is FR-TJ-PARIS-JI, state FR.
  const v1::RequestContent fr = IntakeHarness::CompleteContent(pb::INSTRUMENT_EIO);
  v1::RequestContent as_italian = fr;
  as_italian.mutable_issuing_authority()->set_state("IT");

  struct Case {
    std::string name;
    v1::RequestContent content;
    CallerId who;
    grpc::StatusCode want;
  };
  const std::vector<Case> cases = {
      {"own state", fr, {"FR-TJ-PARIS-JI", "FR", "issuing"}, grpc::StatusCode::OK},
      {"FR token filing as IT",
       as_italian,
       {"FR-TJ-PARIS-JI", "FR", "issuing"},
       grpc::StatusCode::PERMISSION_DENIED},
      {"IT token filing as FR",
       fr,
       {"FR-TJ-PARIS-JI", "IT", "issuing"},
       grpc::StatusCode::PERMISSION_DENIED},
      {"token without a state",
       fr,
       {"FR-TJ-PARIS-JI", "", "issuing"},
       grpc::StatusCode::PERMISSION_DENIED},
      {"central authority of the state", fr, {"FR-BEPI", "FR", "central"}, grpc::StatusCode::OK},
      {"central authority of another state",
       as_italian,
       {"FR-BEPI", "FR", "central"},
       grpc::StatusCode::PERMISSION_DENIED},
      {"service", as_italian, {"rogatory-gateway", "", "service"}, grpc::StatusCode::OK},
  };
  for (const Case& c : cases) {
    v1::Request out;
    const grpc::Status s = h.Submit(c.content, "", &out, c.who);
    EXPECT_EQ(s.error_code(), c.want) << c.name << ": " << s.error_message();
    if (c.want == grpc::StatusCode::PERMISSION_DENIED &&
        c.name != "central authority of another state") {
      EXPECT_NE(s.error_message().find("content.issuing_authority.state"), std::string::npos)
          << c.name << ": " << s.error_message();
    }
  }
}

}  // namespace
}  // namespace rogatory::intake
