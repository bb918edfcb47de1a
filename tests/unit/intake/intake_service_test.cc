// IntakeService through a real in-process gRPC server and the generated stub, on the
// in-memory store and a simulated clock.
#include "intake_service.h"

#include <set>

#include "declared_emits.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "in_memory_request_store.h"
#include "intake_fixtures.h"

namespace rogatory::intake {
namespace {

using testing::CompleteEio;

class IntakeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::IntakeService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                           grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(); }

  void Caller(grpc::ClientContext* ctx, const std::string& authority = "FR-TJ-PARIS-JI") {
    ctx->AddMetadata("x-rogatory-authority", authority);
    ctx->AddMetadata("x-rogatory-state", "FR");
    ctx->AddMetadata("x-rogatory-roles", "issuing");
  }
  grpc::Status Submit(const v1::RequestContent& content, const std::string& request_id,
                      v1::SubmitRequestResponse* resp,
                      const std::string& authority = "FR-TJ-PARIS-JI") {
    grpc::ClientContext ctx;
    Caller(&ctx, authority);
    v1::SubmitRequestRequest req;
    req.set_request_id(request_id);
    *req.mutable_content() = content;
    return stub_->SubmitRequest(&ctx, req, resp);
  }

  common::SimulatedClock clock_;
  common::MetadataAuthenticator authenticator_;
  common::NoRateLimiter limiter_;
  common::LogAuditor auditor_;
  common::Pipeline pipeline_{authenticator_, limiter_, auditor_, clock_};
  InMemoryRequestStore store_;
  IntakeService service_{store_, clock_, pipeline_, common::Sharding(16)};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::IntakeService::Stub> stub_;
  int port_ = 0;
};

TEST_F(IntakeServiceTest, SubmittedRequestIsStoredWithIdStatusAndHistory) {
  v1::SubmitRequestResponse resp;
  ASSERT_TRUE(Submit(CompleteEio(), "r-1", &resp).ok());
  const v1::Request& r = resp.request();
  EXPECT_TRUE(common::Sharding(16).ShardOf("rq", r.id()).ok());
  EXPECT_EQ(r.status(), common::v1::REQUEST_STATUS_RECEIVED);
  EXPECT_EQ(r.create_time().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_EQ(r.etag(), "1");
  EXPECT_EQ(r.trace_id().size(), 32u);

  grpc::ClientContext ctx;
  Caller(&ctx);
  v1::GetRequestRequest get;
  get.set_id(r.id());
  v1::GetRequestResponse got;
  ASSERT_TRUE(stub_->GetRequest(&ctx, get, &got).ok());
  EXPECT_EQ(got.request().content().subjects(0).family_name(), "Testperson");

  auto history = testing::Await<std::vector<common::v1::Event>>(
      [&](auto done) { store_.History(r.id(), std::move(done)); });
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].type(), common::v1::EVENT_TYPE_REQUEST_SUBMITTED);
  EXPECT_EQ((*history)[0].sequence(), 1);
  EXPECT_EQ((*history)[0].source(), "intake");
  EXPECT_EQ((*history)[0].request().requested_state(), "DE");
  EXPECT_EQ((*history)[0].request().issuing_authority().authority_id(), "FR-TJ-PARIS-JI");
  EXPECT_EQ((*history)[0].trace_id(), r.trace_id());
}

TEST_F(IntakeServiceTest, IncompleteRequestIsAcceptedWithMissingElements) {
  v1::RequestContent c = CompleteEio();
  c.clear_measures();
  v1::SubmitRequestResponse resp;
  ASSERT_TRUE(Submit(c, "r-2", &resp).ok());
  EXPECT_EQ(resp.request().status(), common::v1::REQUEST_STATUS_INCOMPLETE);
  ASSERT_EQ(resp.request().missing_elements_size(), 1);
  EXPECT_EQ(resp.request().missing_elements(0).field(), "content.measures");
}

TEST_F(IntakeServiceTest, MalformedRequestAnswersEveryFieldViolation) {
  v1::RequestContent c = CompleteEio();
  c.set_instrument(common::v1::INSTRUMENT_UNSPECIFIED);
  c.set_source_language("french!");
  v1::SubmitRequestResponse resp;
  grpc::Status s = Submit(c, "r-3", &resp);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad));
  std::set<std::string> fields;
  for (const auto& v : bad.field_violations()) fields.insert(v.field());
  EXPECT_EQ(fields, (std::set<std::string>{"content.instrument", "content.source_language"}));
}

TEST_F(IntakeServiceTest, RetryWithSameRequestIdReturnsTheOriginal) {
  v1::SubmitRequestResponse a, b, other_caller;
  ASSERT_TRUE(Submit(CompleteEio(), "r-4", &a).ok());
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(Submit(CompleteEio(), "r-4", &b).ok());
  EXPECT_EQ(a.request().id(), b.request().id());
  EXPECT_EQ(a.request().create_time().seconds(), b.request().create_time().seconds());
  // Another issuing authority's request_id "r-4" is its own: a new request.
  v1::RequestContent theirs = CompleteEio();
  theirs.mutable_issuing_authority()->set_authority_id("BE-PROC-BRUXELLES");
  ASSERT_TRUE(Submit(theirs, "r-4", &other_caller, "BE-PROC-BRUXELLES").ok());
  EXPECT_NE(other_caller.request().id(), a.request().id());
}

TEST_F(IntakeServiceTest, SameRequestIdWithOtherContentIsAlreadyExists) {
  v1::SubmitRequestResponse a, b;
  ASSERT_TRUE(Submit(CompleteEio(), "r-5", &a).ok());
  v1::RequestContent changed = CompleteEio();
  changed.set_requested_state("AT");
  EXPECT_EQ(Submit(changed, "r-5", &b).error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(IntakeServiceTest, ListPagesWithTokensAndHidesPersonalDataByDefault) {
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    v1::SubmitRequestResponse resp;
    ASSERT_TRUE(Submit(CompleteEio(), "", &resp).ok());
    ids.insert(resp.request().id());
    clock_.Advance(absl::Seconds(1));
  }
  std::set<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    Caller(&ctx);
    v1::ListRequestsRequest req;
    req.set_page_size(2);
    req.set_page_token(token);
    req.set_instrument(common::v1::INSTRUMENT_EIO);
    v1::ListRequestsResponse resp;
    ASSERT_TRUE(stub_->ListRequests(&ctx, req, &resp).ok());
    for (const auto& r : resp.requests()) {
      seen.insert(r.id());
      EXPECT_EQ(r.content().subjects_size(), 0);
      EXPECT_TRUE(r.content().statement_of_facts().empty());
    }
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(pages, 3);
}

TEST_F(IntakeServiceTest, PageTokenForOtherFiltersIsInvalidArgument) {
  v1::ListRequestsRequest eio;
  eio.set_instrument(common::v1::INSTRUMENT_EIO);
  const std::string token = EncodePageToken({1, "rq-0-x"}, eio);
  grpc::ClientContext ctx;
  Caller(&ctx);
  v1::ListRequestsRequest eaw;
  eaw.set_instrument(common::v1::INSTRUMENT_EAW);
  eaw.set_page_token(token);
  v1::ListRequestsResponse resp;
  grpc::Status s = stub_->ListRequests(&ctx, eaw, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("page_token"), std::string::npos);
}

// Issue 20: bad combinations of the worklist filters name the field.
TEST_F(IntakeServiceTest, BadWorklistFilterCombinationsAreInvalidArgumentNamingTheField) {
  auto list = [&](const v1::ListRequestsRequest& req, const std::string& roles = "issuing") {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-rogatory-authority",
                    roles == "service" ? "rogatory-routing" : "FR-TJ-PARIS-JI");
    ctx.AddMetadata("x-rogatory-state", "FR");
    ctx.AddMetadata("x-rogatory-roles", roles);
    v1::ListRequestsResponse resp;
    return stub_->ListRequests(&ctx, req, &resp);
  };
  auto expect_field = [](const grpc::Status& s, const std::string& field) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_NE(s.error_message().find(field), std::string::npos) << s.error_message();
  };
  v1::ListRequestsRequest both;
  both.set_status(common::v1::REQUEST_STATUS_RECEIVED);
  both.add_statuses(common::v1::REQUEST_STATUS_FORWARDED);
  expect_field(list(both), "statuses");
  v1::ListRequestsRequest open_and_status;
  open_and_status.set_status(common::v1::REQUEST_STATUS_RECEIVED);
  open_and_status.set_open_only(true);
  expect_field(list(open_and_status), "open_only");
  v1::ListRequestsRequest unknown;
  unknown.add_statuses(static_cast<common::v1::RequestStatus>(999));
  expect_field(list(unknown), "statuses[0]");
  v1::ListRequestsRequest bad_state;
  bad_state.set_counterpart_state("germany");
  expect_field(list(bad_state), "counterpart_state");
  v1::ListRequestsRequest bad_side;
  bad_side.set_side(static_cast<v1::CallerSide>(7));
  expect_field(list(bad_side), "side");
  v1::ListRequestsRequest bad_time;
  bad_time.mutable_next_deadline_before()->set_seconds(-5);
  expect_field(list(bad_time), "next_deadline_before");
  // A service is on no side and has no worklist order.
  v1::ListRequestsRequest side;
  side.set_side(v1::CALLER_SIDE_ISSUING);
  expect_field(list(side, "service"), "side");
  v1::ListRequestsRequest due;
  due.set_order_by(v1::REQUEST_ORDER_NEXT_DUE_TIME);
  expect_field(list(due, "service"), "order_by");
  EXPECT_TRUE(list(due).ok());
}

// A page token binds to the worklist filters too; the next due order pages through.
TEST_F(IntakeServiceTest, WorklistPagesByNextDueAndItsTokenBindsToTheFilters) {
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    v1::SubmitRequestResponse resp;
    ASSERT_TRUE(Submit(CompleteEio(), "", &resp).ok());
    ids.insert(resp.request().id());
    clock_.Advance(absl::Seconds(1));
  }
  v1::ListRequestsRequest req;
  req.set_page_size(2);
  req.set_order_by(v1::REQUEST_ORDER_NEXT_DUE_TIME);
  req.set_open_only(true);
  req.add_statuses(common::v1::REQUEST_STATUS_RECEIVED);
  std::set<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    Caller(&ctx);
    req.set_page_token(token);
    v1::ListRequestsResponse resp;
    grpc::Status s = stub_->ListRequests(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const auto& r : resp.requests()) seen.insert(r.id());
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(pages, 3);

  // The first page's token with another worklist filter: refused, naming page_token.
  grpc::ClientContext first_ctx;
  Caller(&first_ctx);
  req.set_page_token("");
  v1::ListRequestsResponse first;
  ASSERT_TRUE(stub_->ListRequests(&first_ctx, req, &first).ok());
  ASSERT_FALSE(first.next_page_token().empty());
  v1::ListRequestsRequest other = req;
  other.set_page_token(first.next_page_token());
  other.set_side(v1::CALLER_SIDE_EXECUTING);
  grpc::ClientContext ctx;
  Caller(&ctx);
  v1::ListRequestsResponse resp;
  grpc::Status s = stub_->ListRequests(&ctx, other, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("page_token"), std::string::npos);
  // A stale (garbled) token likewise.
  other = req;
  other.set_page_token("not-a-token");
  grpc::ClientContext ctx2;
  Caller(&ctx2);
  s = stub_->ListRequests(&ctx2, other, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(IntakeServiceTest, UnknownAndMalformedIds) {
  grpc::ClientContext c1, c2;
  Caller(&c1);
  Caller(&c2);
  v1::GetRequestRequest req;
  v1::GetRequestResponse resp;
  req.set_id(common::Sharding::MakeId("rq", 3, clock_.Now()));
  EXPECT_EQ(stub_->GetRequest(&c1, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  req.set_id("not-an-id");
  EXPECT_EQ(stub_->GetRequest(&c2, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace rogatory::intake
