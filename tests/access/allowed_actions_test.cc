// Issue 20, item 2: Request.allowed_actions says what the caller may do now, and the RPCs
// agree. The lifecycle table is walked whole: for every instrument, every status reachable
// through the table, and every kind of caller, each action GetRequest lists is performed on
// a request in that status and must be accepted; every other action (each TransitionRequest
// target of the instrument, acknowledgment, withdrawal, supplement, upload) must be refused
// and leave the request as it was. So the list and the enforcement cannot drift apart.
// Through a real in-process gRPC server on the in-memory stores, with the role gate on.
// Also: the refusals of intake's paths each carry google.rpc.ErrorInfo with their reason.
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "in_memory_document_store.h"
#include "in_memory_request_store.h"
#include "intake_harness.h"
#include "intake_walk.h"
#include "lifecycle.h"
#include "rogatory/common/ids.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;
using testing::CallerId;
using testing::IntakeHarness;

// The walk's parties, as in intake_authz_test (tests/support/intake_walk.h).
using Party = testing::WalkParty;
const std::vector<Party>& Parties() { return testing::WalkParties(); }
const CallerId& kService = testing::kServiceCaller;

std::string Key(const v1::AllowedAction& a) {
  return absl::StrCat(v1::RequestAction_Name(a.action()), ":",
                      pb::RequestStatus_Name(a.target_status()), ":", a.method());
}

v1::AllowedAction Action(v1::RequestAction action, pb::RequestStatus target,
                         const std::string& method) {
  v1::AllowedAction a;
  a.set_action(action);
  a.set_target_status(target);
  a.set_method(method);
  return a;
}

class AllowedActionsTest : public ::testing::Test {
 protected:
  // Every action one could try on a request of `instrument`.
  static std::vector<v1::AllowedAction> Candidates(pb::Instrument instrument) {
    std::set<pb::RequestStatus> targets;
    for (pb::RequestStatus from : Lifecycle::Default().Statuses(instrument)) {
      for (const Move& m : Lifecycle::Default().MovesFrom(instrument, from)) targets.insert(m.to);
    }
    std::vector<v1::AllowedAction> out;
    for (pb::RequestStatus t : targets) {
      out.push_back(Action(v1::REQUEST_ACTION_TRANSITION, t, "TransitionRequest"));
    }
    out.push_back(Action(v1::REQUEST_ACTION_ACKNOWLEDGE, pb::REQUEST_STATUS_ACKNOWLEDGED,
                         "AcknowledgeRequest"));
    out.push_back(
        Action(v1::REQUEST_ACTION_WITHDRAW, pb::REQUEST_STATUS_WITHDRAWN, "WithdrawRequest"));
    out.push_back(
        Action(v1::REQUEST_ACTION_SUPPLEMENT, pb::REQUEST_STATUS_UNSPECIFIED, "SupplementRequest"));
    out.push_back(Action(v1::REQUEST_ACTION_UPLOAD_DOCUMENT, pb::REQUEST_STATUS_UNSPECIFIED,
                         "UploadDocument"));
    return out;
  }

  // The statuses to pass through from RECEIVED to reach `target` (empty for RECEIVED);
  // nullopt when the table does not lead there.
  static std::optional<std::vector<pb::RequestStatus>> PathTo(pb::Instrument instrument,
                                                              pb::RequestStatus target) {
    return testing::ShortestWalk(instrument,
                                 [target](pb::RequestStatus at) { return at == target; });
  }

  // A fresh request of `instrument` with the walk's parties, moved by a service along
  // `path`.
  v1::Request At(pb::Instrument instrument, const std::vector<pb::RequestStatus>& path) {
    v1::Request r;
    grpc::Status s = h_.Submit(IntakeHarness::CompleteContent(instrument), "", &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    testing::NameWalkParties(store_, h_.clock().Now(), r.id(),
                             instrument == pb::INSTRUMENT_PRODUCTION_ORDER);
    for (pb::RequestStatus step : path) {
      v1::AllowedAction a =
          step == pb::REQUEST_STATUS_ACKNOWLEDGED ? Action(v1::REQUEST_ACTION_ACKNOWLEDGE, step, "")
          : step == pb::REQUEST_STATUS_WITHDRAWN  ? Action(v1::REQUEST_ACTION_WITHDRAW, step, "")
                                                  : Action(v1::REQUEST_ACTION_TRANSITION, step, "");
      s = Perform(a, r.id(), kService);
      EXPECT_TRUE(s.ok()) << pb::RequestStatus_Name(step) << ": " << s.error_message();
    }
    EXPECT_TRUE(Read(r.id(), kService, &r).ok());
    return r;
  }

  grpc::Status Read(const std::string& id, const CallerId& who, v1::Request* out,
                    v1::RequestView view = v1::REQUEST_VIEW_FULL) {
    grpc::ClientContext ctx;
    IntakeHarness::As(&ctx, who);
    v1::GetRequestRequest req;
    req.set_id(id);
    req.set_view(view);
    v1::GetRequestResponse resp;
    grpc::Status s = h_.stub().GetRequest(&ctx, req, &resp);
    *out = resp.request();
    return s;
  }

  // Performs `a` on request `id` as `who`, with valid input.
  grpc::Status Perform(const v1::AllowedAction& a, const std::string& id, const CallerId& who) {
    switch (a.action()) {
      case v1::REQUEST_ACTION_TRANSITION:
        return h_.Transition(testing::TransitionTo(id, a.target_status()), nullptr, who);
      case v1::REQUEST_ACTION_ACKNOWLEDGE:
        return h_.Acknowledge(id, nullptr, who);
      case v1::REQUEST_ACTION_WITHDRAW: {
        v1::WithdrawRequestRequest w;
        w.set_id(id);
        return h_.Withdraw(w, nullptr, who);
      }
      case v1::REQUEST_ACTION_SUPPLEMENT: {
        v1::Request current;
        if (grpc::Status s = Read(id, kService, &current); !s.ok()) return s;
        v1::SupplementRequestRequest req;
        req.set_id(id);
        *req.mutable_content() = current.content();
        req.mutable_update_mask()->add_paths("urgency");
        return h_.Supplement(req, nullptr, who);
      }
      case v1::REQUEST_ACTION_UPLOAD_DOCUMENT: {
        const std::string bytes = "%PDF-1.4 allowed actions";
        grpc::ClientContext ctx;
        IntakeHarness::As(&ctx, who);
        v1::UploadDocumentResponse resp;
        auto writer = h_.stub().UploadDocument(&ctx, &resp);
        v1::UploadDocumentRequest msg;
        v1::DocumentUpload* m = msg.mutable_metadata();
        m->set_id(id);
        m->set_kind(v1::DOCUMENT_KIND_REQUEST_FORM);
        m->set_language("fr");
        m->set_media_type("application/pdf");
        m->set_title("Annex A");
        m->set_sha256(common::Sha256Hex(bytes));
        bool ok = writer->Write(msg);
        msg.set_chunk(bytes);
        if (ok) writer->Write(msg);
        writer->WritesDone();
        return writer->Finish();
      }
      default:
        return grpc::Status(grpc::StatusCode::INTERNAL, "unknown action");
    }
  }

  InMemoryRequestStore store_;
  InMemoryDocumentStore documents_{store_};
  // Room for one test document per request (the walk uploads at most one to each).
  IntakeHarness h_{
      store_, 16, &documents_,
      IntakeOptions{.max_document_bytes = 1 << 20, .max_document_bytes_per_request = 40},
      /*role_gate=*/true};
};

TEST_F(AllowedActionsTest, EveryListedActionIsAcceptedAndEveryOtherRefused) {
  const std::vector<pb::Instrument> instruments = {pb::INSTRUMENT_MLA,
                                                   pb::INSTRUMENT_EIO,
                                                   pb::INSTRUMENT_EAW,
                                                   pb::INSTRUMENT_EXTRADITION,
                                                   pb::INSTRUMENT_PROVISIONAL_ARREST,
                                                   pb::INSTRUMENT_FREEZING_ORDER,
                                                   pb::INSTRUMENT_PRODUCTION_ORDER};
  int accepted = 0, refused = 0, states = 0;
  std::set<std::string> kinds_seen;
  for (pb::Instrument instrument : instruments) {
    const std::vector<v1::AllowedAction> candidates = Candidates(instrument);
    for (pb::RequestStatus status : Lifecycle::Default().Statuses(instrument)) {
      const auto path = PathTo(instrument, status);
      if (!path.has_value()) continue;  // not reachable through the table (INCOMPLETE)
      ++states;
      v1::Request base = At(instrument, *path);
      if (HasFailure()) return;
      ASSERT_EQ(base.status(), status);
      for (const Party& party : Parties()) {
        const std::string where =
            absl::StrCat(pb::Instrument_Name(instrument), " in ", pb::RequestStatus_Name(status),
                         ", the ", party.name);
        v1::Request seen;
        std::set<std::string> listed;
        if (Read(base.id(), party.who, &seen).ok()) {
          for (const v1::AllowedAction& a : seen.allowed_actions()) {
            EXPECT_TRUE(listed.insert(Key(a)).second) << where << ": listed twice: " << Key(a);
          }
        }
        std::set<std::string> candidate_keys;
        for (const v1::AllowedAction& a : candidates) {
          candidate_keys.insert(Key(a));
          if (listed.count(Key(a)) > 0) {
            // On a request of its own in this status: performing it changes the request.
            const v1::Request fresh = At(instrument, *path);
            const grpc::Status s = Perform(a, fresh.id(), party.who);
            EXPECT_TRUE(s.ok()) << where << ": listed " << Key(a)
                                << " but refused: " << s.error_code() << " " << s.error_message();
            kinds_seen.insert(v1::RequestAction_Name(a.action()));
            ++accepted;
          } else {
            const grpc::Status s = Perform(a, base.id(), party.who);
            EXPECT_FALSE(s.ok()) << where << ": not listed " << Key(a) << " but accepted";
            if (s.ok()) base = At(instrument, *path);  // keep walking on a clean one
            ++refused;
          }
        }
        for (const std::string& k : listed) {
          EXPECT_TRUE(candidate_keys.count(k) > 0) << where << ": listed an unknown action " << k;
        }
      }
      // Refused actions left the request as it was.
      v1::Request after;
      ASSERT_TRUE(Read(base.id(), kService, &after).ok());
      EXPECT_EQ(after.status(), status);
    }
  }
  EXPECT_GE(states, 7 * 5);
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 1000);
  // Every kind of action was listed (and performed) somewhere.
  EXPECT_EQ(kinds_seen,
            (std::set<std::string>{"REQUEST_ACTION_TRANSITION", "REQUEST_ACTION_ACKNOWLEDGE",
                                   "REQUEST_ACTION_WITHDRAW", "REQUEST_ACTION_SUPPLEMENT",
                                   "REQUEST_ACTION_UPLOAD_DOCUMENT"}));
}

TEST_F(AllowedActionsTest, DependOnTheCallerAndAreLeftOutOfTheBasicView) {
  const v1::Request r =
      At(pb::INSTRUMENT_EIO, *PathTo(pb::INSTRUMENT_EIO, pb::REQUEST_STATUS_FORWARDED));
  v1::Request as_executor, as_issuer, basic;
  ASSERT_TRUE(Read(r.id(), Parties()[2].who, &as_executor).ok());
  ASSERT_TRUE(Read(r.id(), Parties()[0].who, &as_issuer).ok());
  std::set<std::string> executor, issuer;
  for (const auto& a : as_executor.allowed_actions()) executor.insert(Key(a));
  for (const auto& a : as_issuer.allowed_actions()) issuer.insert(Key(a));
  EXPECT_TRUE(
      executor.count("REQUEST_ACTION_ACKNOWLEDGE:REQUEST_STATUS_ACKNOWLEDGED:AcknowledgeRequest"));
  EXPECT_FALSE(executor.count("REQUEST_ACTION_WITHDRAW:REQUEST_STATUS_WITHDRAWN:WithdrawRequest"));
  EXPECT_TRUE(issuer.count("REQUEST_ACTION_WITHDRAW:REQUEST_STATUS_WITHDRAWN:WithdrawRequest"));
  EXPECT_TRUE(
      issuer.count("REQUEST_ACTION_SUPPLEMENT:REQUEST_STATUS_UNSPECIFIED:SupplementRequest"));
  EXPECT_FALSE(
      issuer.count("REQUEST_ACTION_ACKNOWLEDGE:REQUEST_STATUS_ACKNOWLEDGED:AcknowledgeRequest"));
  ASSERT_TRUE(Read(r.id(), Parties()[0].who, &basic, v1::REQUEST_VIEW_BASIC).ok());
  EXPECT_EQ(basic.allowed_actions_size(), 0);
}

// Issue 20, item 2: each kind of refusal intake answers carries ErrorInfo, domain rogatory,
// with the reason a UI switches on (and the details that come with it).
TEST_F(AllowedActionsTest, EveryRefusalCarriesErrorInfoWithItsReason) {
  auto expect = [](const grpc::Status& s, grpc::StatusCode code, const std::string& reason,
                   const std::string& what) -> google::rpc::ErrorInfo {
    EXPECT_EQ(s.error_code(), code) << what << ": " << s.error_message();
    auto info = common::GetErrorInfo(s);
    EXPECT_TRUE(info.has_value()) << what << " has no ErrorInfo";
    if (!info.has_value()) return {};
    EXPECT_EQ(info->domain(), "rogatory") << what;
    EXPECT_EQ(info->reason(), reason) << what;
    return *info;
  };
  const CallerId issuer = Parties()[0].who, executor = Parties()[2].who;
  const v1::Request r =
      At(pb::INSTRUMENT_EIO, *PathTo(pb::INSTRUMENT_EIO, pb::REQUEST_STATUS_FORWARDED));
  // A bad field: BadRequest alongside.
  {
    v1::RequestContent empty;
    const grpc::Status s = h_.Submit(empty, "", nullptr);
    expect(s, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_FIELD", "bad field");
    EXPECT_FALSE(IntakeHarness::BadFields(s).empty());
  }
  // An unknown id, and a request outside the caller's reach: the same NOT_FOUND.
  v1::Request out;
  expect(Read(common::Sharding::MakeId("rq", 3, absl::FromUnixSeconds(1767225600)), issuer, &out),
         grpc::StatusCode::NOT_FOUND, "NOT_FOUND", "unknown id");
  expect(Read(r.id(), Parties()[7].who, &out), grpc::StatusCode::NOT_FOUND, "NOT_FOUND",
         "stranger");
  // Denied: by the role table (the issuing role does not call TransitionRequest), and by the
  // side of the request (the executor does not withdraw).
  expect(Perform(Action(v1::REQUEST_ACTION_TRANSITION, pb::REQUEST_STATUS_RECOGNISED, ""), r.id(),
                 issuer),
         grpc::StatusCode::PERMISSION_DENIED, "PERMISSION_DENIED", "role table");
  expect(Perform(Action(v1::REQUEST_ACTION_WITHDRAW, pb::REQUEST_STATUS_WITHDRAWN, ""), r.id(),
                 {"DE-STA-MUENCHEN", "DE", "executing,issuing"}),
         grpc::StatusCode::PERMISSION_DENIED, "PERMISSION_DENIED", "side");
  // A stale etag: PreconditionFailure naming the request, the current etag in metadata.
  {
    const grpc::Status s = h_.Acknowledge(r.id(), nullptr, executor, "", "1");  // long gone
    const auto info = expect(s, grpc::StatusCode::ABORTED, "STALE_ETAG", "stale etag");
    EXPECT_EQ(info.metadata().count("current_etag") ? info.metadata().at("current_etag") : "",
              r.etag());
    auto failure = common::GetPreconditionFailure(s);
    ASSERT_TRUE(failure.has_value());
    EXPECT_EQ(failure->violations(0).type(), "STALE_ETAG");
    EXPECT_EQ(failure->violations(0).subject(), r.id());
  }
  // A move the lifecycle does not allow: what is allowed in metadata.
  {
    const grpc::Status s = Perform(
        Action(v1::REQUEST_ACTION_TRANSITION, pb::REQUEST_STATUS_RECEIVED, ""), r.id(), kService);
    const auto info =
        expect(s, grpc::StatusCode::FAILED_PRECONDITION, "TRANSITION_NOT_ALLOWED", "transition");
    ASSERT_TRUE(info.metadata().count("allowed_next_statuses"));
    EXPECT_EQ(info.metadata().at("current_status"), "REQUEST_STATUS_FORWARDED");
    EXPECT_NE(info.metadata().at("allowed_next_statuses").find("REQUEST_STATUS_ACKNOWLEDGED"),
              std::string::npos);
    auto failure = common::GetPreconditionFailure(s);
    ASSERT_TRUE(failure.has_value());
    EXPECT_EQ(failure->violations(0).type(), "TRANSITION_NOT_ALLOWED");
  }
  // A quota: the second document does not fit the request's 40 bytes.
  const v1::AllowedAction upload =
      Action(v1::REQUEST_ACTION_UPLOAD_DOCUMENT, pb::REQUEST_STATUS_UNSPECIFIED, "");
  ASSERT_TRUE(Perform(upload, r.id(), issuer).ok());
  expect(Perform(upload, r.id(), issuer), grpc::StatusCode::RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED",
         "quota");
  // No caller.
  {
    grpc::ClientContext ctx;
    v1::GetRequestRequest req;
    req.set_id(r.id());
    v1::GetRequestResponse resp;
    expect(h_.stub().GetRequest(&ctx, req, &resp), grpc::StatusCode::UNAUTHENTICATED,
           "UNAUTHENTICATED", "no caller");
  }
  // A page token this service did not issue.
  {
    grpc::ClientContext ctx;
    IntakeHarness::As(&ctx, issuer);
    v1::ListRequestsRequest req;
    req.set_page_token("bm90IGEgdG9rZW4");
    v1::ListRequestsResponse resp;
    expect(h_.stub().ListRequests(&ctx, req, &resp), grpc::StatusCode::INVALID_ARGUMENT,
           "PAGE_TOKEN_INVALID", "page token");
  }
}

}  // namespace
}  // namespace rogatory::intake
