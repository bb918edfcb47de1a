#pragma once

// IntakeService through a real in-process gRPC server and the generated stub, on any
// RequestStore and a simulated clock.

#include <memory>
#include <set>
#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "intake_fixtures.h"
#include "intake_service.h"

namespace rogatory::testing {

struct CallerId {
  std::string authority = "FR-TJ-PARIS-JI";
  std::string state = "FR";
  std::string roles = "issuing";
};

inline const CallerId kIssuer{};
// Before routing names an executing authority, the requested state's central authority
// acts for the executing side (need-to-know, common/access.h).
inline const CallerId kExecutor{"DE-GSTA-FRANKFURT", "DE", "executing,central"};

class IntakeHarness {
 public:
  // `role_gate`: the pipeline checks every call against the role table, as the platform's
  // does (Pipeline::SetRoleGate).
  IntakeHarness(intake::RequestStore& store, int shards = 16,
                intake::DocumentStore* documents = nullptr, intake::IntakeOptions options = {},
                bool role_gate = false)
      : store_(store),
        service_(store_, clock_, pipeline_, common::Sharding(shards), documents, options) {
    pipeline_.SetRoleGate(role_gate);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
    stub_ = intake::v1::IntakeService::NewStub(channel_);
  }
  ~IntakeHarness() { server_->Shutdown(); }

  static void As(grpc::ClientContext* ctx, const CallerId& caller) {
    ctx->AddMetadata("x-rogatory-authority", caller.authority);
    ctx->AddMetadata("x-rogatory-state", caller.state);
    ctx->AddMetadata("x-rogatory-roles", caller.roles);
  }

  grpc::Status Submit(const intake::v1::RequestContent& content, const std::string& request_id,
                      intake::v1::Request* out, const CallerId& caller = kIssuer) {
    grpc::ClientContext ctx;
    As(&ctx, caller);
    intake::v1::SubmitRequestRequest req;
    req.set_request_id(request_id);
    *req.mutable_content() = content;
    intake::v1::SubmitRequestResponse resp;
    grpc::Status s = stub_->SubmitRequest(&ctx, req, &resp);
    if (out != nullptr) *out = resp.request();
    return s;
  }

  // Submits CompleteEio() with `instrument` and the details it needs to be complete.
  intake::v1::Request SubmitComplete(common::v1::Instrument instrument) {
    intake::v1::Request r;
    EXPECT_TRUE(Submit(CompleteContent(instrument), "", &r).ok());
    return r;
  }

  grpc::Status Transition(const intake::v1::TransitionRequestRequest& req, intake::v1::Request* out,
                          const CallerId& caller = kExecutor) {
    grpc::ClientContext ctx;
    As(&ctx, caller);
    intake::v1::TransitionRequestResponse resp;
    grpc::Status s = stub_->TransitionRequest(&ctx, req, &resp);
    if (out != nullptr) *out = resp.request();
    return s;
  }
  grpc::Status Move(const std::string& id, common::v1::RequestStatus to,
                    intake::v1::Request* out = nullptr, const std::string& reason = "") {
    intake::v1::TransitionRequestRequest req;
    req.set_id(id);
    req.set_target_status(to);
    req.set_reason_code(reason);
    if (to == common::v1::REQUEST_STATUS_REFUSED ||
        to == common::v1::REQUEST_STATUS_PARTIALLY_EXECUTED) {
      req.add_refusal_grounds(common::v1::REFUSAL_GROUND_DUAL_CRIMINALITY);
    }
    return Transition(req, out);
  }
  // AcknowledgeRequest (EIO Annex B), by default as the executing side.
  grpc::Status Acknowledge(const std::string& id, intake::v1::Request* out = nullptr,
                           const CallerId& caller = kExecutor, const std::string& request_id = "",
                           const std::string& etag = "") {
    grpc::ClientContext ctx;
    As(&ctx, caller);
    intake::v1::AcknowledgeRequestRequest req;
    req.set_id(id);
    req.set_request_id(request_id);
    req.set_etag(etag);
    intake::v1::AcknowledgeRequestResponse resp;
    grpc::Status s = stub_->AcknowledgeRequest(&ctx, req, &resp);
    if (out != nullptr) *out = resp.request();
    return s;
  }
  grpc::Status Supplement(const intake::v1::SupplementRequestRequest& req, intake::v1::Request* out,
                          const CallerId& caller = kIssuer) {
    grpc::ClientContext ctx;
    As(&ctx, caller);
    intake::v1::SupplementRequestResponse resp;
    grpc::Status s = stub_->SupplementRequest(&ctx, req, &resp);
    if (out != nullptr) *out = resp.request();
    return s;
  }
  grpc::Status Withdraw(const intake::v1::WithdrawRequestRequest& req, intake::v1::Request* out,
                        const CallerId& caller = kIssuer) {
    grpc::ClientContext ctx;
    As(&ctx, caller);
    intake::v1::WithdrawRequestResponse resp;
    grpc::Status s = stub_->WithdrawRequest(&ctx, req, &resp);
    if (out != nullptr) *out = resp.request();
    return s;
  }
  grpc::Status Get(const std::string& id, intake::v1::Request* out) {
    grpc::ClientContext ctx;
    As(&ctx, kIssuer);
    intake::v1::GetRequestRequest req;
    req.set_id(id);
    intake::v1::GetRequestResponse resp;
    grpc::Status s = stub_->GetRequest(&ctx, req, &resp);
    if (out != nullptr) *out = resp.request();
    return s;
  }
  // Every history event, following page tokens with the given page size.
  std::vector<common::v1::Event> History(const std::string& id, int page_size = 0,
                                         int* pages = nullptr) {
    std::vector<common::v1::Event> all;
    std::string token;
    int n = 0;
    do {
      grpc::ClientContext ctx;
      As(&ctx, kIssuer);
      intake::v1::GetRequestHistoryRequest req;
      req.set_id(id);
      req.set_page_size(page_size);
      req.set_page_token(token);
      intake::v1::GetRequestHistoryResponse resp;
      grpc::Status s = stub_->GetRequestHistory(&ctx, req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      for (const auto& e : resp.events()) all.push_back(e);
      token = resp.next_page_token();
      ++n;
    } while (!token.empty() && n < 1000);
    if (pages != nullptr) *pages = n;
    return all;
  }

  // A content complete for its instrument (completeness.cc finds nothing missing).
  static intake::v1::RequestContent CompleteContent(common::v1::Instrument instrument) {
    intake::v1::RequestContent c = CompleteEio();
    c.set_instrument(instrument);
    switch (instrument) {
      case common::v1::INSTRUMENT_MLA:
        c.mutable_mla()->set_treaty("CoE 1959");
        break;
      case common::v1::INSTRUMENT_EIO:
        break;
      case common::v1::INSTRUMENT_EAW:
        c.mutable_subjects(0)->set_role(intake::v1::SUBJECT_ROLE_REQUESTED_PERSON);
        c.mutable_eaw()->set_purpose(intake::v1::WARRANT_PURPOSE_PROSECUTION);
        c.mutable_eaw()->set_underlying_decision_reference("Warrant 1/2026");
        break;
      case common::v1::INSTRUMENT_EXTRADITION:
        c.mutable_subjects(0)->set_role(intake::v1::SUBJECT_ROLE_REQUESTED_PERSON);
        c.mutable_extradition()->set_treaty("ECE 1957");
        break;
      case common::v1::INSTRUMENT_PROVISIONAL_ARREST:
        c.mutable_subjects(0)->set_role(intake::v1::SUBJECT_ROLE_REQUESTED_PERSON);
        c.mutable_provisional_arrest()->set_formal_request_will_follow(true);
        c.mutable_provisional_arrest()->set_underlying_decision_reference("Warrant 2/2026");
        break;
      case common::v1::INSTRUMENT_FREEZING_ORDER: {
        c.mutable_freezing_order()->set_kind(intake::v1::ASSET_ORDER_KIND_FREEZING);
        auto* a = c.mutable_freezing_order()->add_assets();
        a->set_description("A bank account.");
        a->set_currency("EUR");
        break;
      }
      case common::v1::INSTRUMENT_PRODUCTION_ORDER: {
        auto* po = c.mutable_production_order();
        po->mutable_service_provider()->set_authority_id("IE-PROVIDER-LEGALREP");
        po->mutable_service_provider()->set_state("IE");
        po->add_data_categories(intake::v1::DATA_CATEGORY_SUBSCRIBER);
        break;
      }
      default:
        break;
    }
    return c;
  }

  static std::set<std::string> BadFields(const grpc::Status& s) {
    std::set<std::string> out;
    google::rpc::Status details;
    if (!details.ParseFromString(s.error_details())) return out;
    for (const auto& any : details.details()) {
      google::rpc::BadRequest bad;
      if (any.UnpackTo(&bad)) {
        for (const auto& v : bad.field_violations()) out.insert(v.field());
      }
    }
    return out;
  }

  common::SimulatedClock& clock() { return clock_; }
  intake::v1::IntakeService::Stub& stub() { return *stub_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  intake::RequestStore& store_;
  common::SimulatedClock clock_;
  common::MetadataAuthenticator authenticator_;
  common::NoRateLimiter limiter_;
  common::LogAuditor auditor_;
  common::Pipeline pipeline_{authenticator_, limiter_, auditor_, clock_};
  intake::IntakeService service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<intake::v1::IntakeService::Stub> stub_;
  int port_ = 0;
};

}  // namespace rogatory::testing
