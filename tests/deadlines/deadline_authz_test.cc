// Issue 16, items 6 and 8, against the real deadline service on a real Redis, through an
// in-process gRPC server whose pipeline has the role gate and the denial log on, as the
// platform wires them:
// - item 6: every RPC of rogatory.deadlines.v1.DeadlineService as every kind of caller. The
//   executing side completes, cancels and extends its time limits, operators suspend and
//   resume them (with a reason), either side starts one; the issuing side is refused
//   (PERMISSION_DENIED), a caller the request does not concern learns nothing (NOT_FOUND).
// - item 8: a denied read of an existing deadline and of a missing one land in the caller's
//   denial log in the same shape; an auditor pages through it; anyone else is refused.
// The expected outcomes are written out here from the issue.
#include <map>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "redis_fixture.h"
#include "rogatory/admin/v1/audit.grpc.pb.h"
#include "rogatory/common/audit_service.h"
#include "rogatory/common/denial_log.h"
#include "rogatory/common/pipeline.h"

namespace rogatory::deadlines::testing {
namespace {

namespace adminpb = rogatory::admin::v1;

struct Who {
  std::string name, authority, state, roles;
};
const Who kIssuer{"issuer", "FR-TJ-PARIS-JI", "FR", "issuing"};
const Who kIssuingCentral{"issuing central", "FR-BEPI", "FR", "central"};
const Who kExecutor{"executor", "DE-STA-MUENCHEN", "DE", "executing"};
const Who kRequestedCentral{"requested central", "DE-BFJ", "DE", "central"};
const Who kStranger{"stranger", "BE-PARQUET-BRUXELLES", "BE", "issuing"};
const Who kTranslator{"translator", "XL-1", "DE", "translator"};
const Who kAuditor{"auditor", "EU-AUDIT-1", "FR", "auditor"};
const Who kOperator{"operator", "OPS-1", "", "operator"};
const Who kService{"service", "rogatory-intake", "", "service"};
const Who kNoRoles{"no roles", "NOBODY-1", "DE", ""};

const std::vector<Who>& Everyone() {
  static const auto* all =
      new std::vector<Who>{kIssuer,     kIssuingCentral, kExecutor, kRequestedCentral, kStranger,
                           kTranslator, kAuditor,        kOperator, kService,          kNoRoles};
  return *all;
}

class DeadlineAuthzTest : public DeadlinesRedisTest {
 protected:
  void SetUp() override {
    DeadlinesRedisTest::SetUp();
    if (HasFatalFailure()) return;
    sharding_ = std::make_unique<common::Sharding>(kShards);
    denials_ = std::make_unique<common::RedisDenialLog>(*redis_, clock_, *sharding_);
    pipeline_ = std::make_unique<common::Pipeline>(authenticator_, limiter_, auditor_, clock_);
    pipeline_->SetRoleGate(true);
    pipeline_->SetDenialLog(denials_.get());
    service_ = std::make_unique<DeadlineService>(*tracker_, *pipeline_);
    audit_ = std::make_unique<common::AuditServiceImpl>(*pipeline_, *redis_, *sharding_, nullptr);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    builder.RegisterService(audit_.get());
    server_ = builder.BuildAndStart();
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    stub_ = v1::DeadlineService::NewStub(channel);
    audit_stub_ = adminpb::AuditService::NewStub(channel);

    // The request: issued by FR-TJ-PARIS-JI to Germany, routed to DE-STA-MUENCHEN.
    request_id_ = RequestId(1);
    common::RequestParties parties;
    parties.issuing_authority_id = kIssuer.authority;
    parties.issuing_state = "FR";
    parties.executing_authority_id = kExecutor.authority;
    parties.requested_state = "DE";
    CommitOptions options;
    options.parties_request_id = request_id_;
    options.parties = parties;
    Waiter<absl::StatusOr<CommitOutcome>> w;
    store_->Commit(1, {}, options, w.Callback());
    ASSERT_TRUE(w.Get().ok());
    auto running = StartDeadline(request_id_, "EAW_DECISION_NO_CONSENT");
    auto met = StartDeadline(request_id_, "EAW_DECISION_CONSENT");
    auto cancelled = StartDeadline(request_id_, "EAW_SURRENDER");
    ASSERT_TRUE(running.ok() && met.ok() && cancelled.ok());
    running_ = running->id();
    met_ = met->id();
    cancelled_ = cancelled->id();
    grpc::ClientContext c1, c2;
    As(c1, kExecutor);
    As(c2, kExecutor);
    v1::CompleteDeadlineRequest complete;
    complete.set_deadline_id(met_);
    v1::CompleteDeadlineResponse completed;
    ASSERT_TRUE(stub_->CompleteDeadline(&c1, complete, &completed).ok());
    v1::CancelDeadlineRequest cancel;
    cancel.set_deadline_id(cancelled_);
    cancel.set_reason_code("TEST");
    v1::CancelDeadlineResponse cancelled_resp;
    ASSERT_TRUE(stub_->CancelDeadline(&c2, cancel, &cancelled_resp).ok());
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    if (audit_ != nullptr) audit_->Stop();
  }

  static void As(grpc::ClientContext& ctx, const Who& who) {
    ctx.AddMetadata("x-rogatory-authority", who.authority);
    ctx.AddMetadata("x-rogatory-state", who.state);
    ctx.AddMetadata("x-rogatory-roles", who.roles);
  }

  template <typename Req, typename Resp, typename Method>
  grpc::StatusCode Call(const Who& who, Method method, const Req& req) {
    grpc::ClientContext ctx;
    As(ctx, who);
    Resp resp;
    return (stub_.get()->*method)(&ctx, req, &resp).error_code();
  }

  grpc::Status Denials(const Who& who, const std::string& authority, int page_size,
                       const std::string& token, adminpb::ListDenialsResponse* out) {
    grpc::ClientContext ctx;
    As(ctx, who);
    adminpb::ListDenialsRequest req;
    req.set_authority_id(authority);
    req.set_page_size(page_size);
    req.set_page_token(token);
    return audit_stub_->ListDenials(&ctx, req, out);
  }

  common::MetadataAuthenticator authenticator_;
  common::NoRateLimiter limiter_;
  common::LogAuditor auditor_;
  std::unique_ptr<common::Sharding> sharding_;
  std::unique_ptr<common::RedisDenialLog> denials_;
  std::unique_ptr<common::Pipeline> pipeline_;
  std::unique_ptr<DeadlineService> service_;
  std::unique_ptr<common::AuditServiceImpl> audit_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::DeadlineService::Stub> stub_;
  std::unique_ptr<adminpb::AuditService::Stub> audit_stub_;
  std::string request_id_, running_, met_, cancelled_;
};

using Code = grpc::StatusCode;
constexpr Code OK = Code::OK;
constexpr Code NF = Code::NOT_FOUND;
constexpr Code PD = Code::PERMISSION_DENIED;
constexpr Code FP = Code::FAILED_PRECONDITION;

// Per caller, in Everyone() order: issuer, issuing central, executor, requested central,
// stranger, translator, auditor, operator, service, no roles.
using Row = std::vector<Code>;

TEST_F(DeadlineAuthzTest, EveryRoleAgainstEveryDeadlineRpc) {
  v1::StartDeadlineRequest start;
  start.set_target_request_id(request_id_);
  start.set_rule_id("EAW_DECISION_NO_CONSENT");
  // On the cancelled deadline: an allowed caller gets FAILED_PRECONDITION (its state), so
  // the outcome does not depend on who went before.
  v1::ExtendDeadlineRequest extend;
  extend.set_deadline_id(cancelled_);
  extend.mutable_by()->set_seconds(86400);
  extend.set_reason_code("COMPLEX_CASE");
  v1::SuspendDeadlineRequest suspend;
  suspend.set_deadline_id(cancelled_);
  suspend.set_reason_code("COURT_ORDER");
  v1::ResumeDeadlineRequest resume;
  resume.set_deadline_id(cancelled_);
  resume.set_reason_code("COURT_ORDER");
  // Idempotent: completing the met one and cancelling the cancelled one again are OK.
  v1::CompleteDeadlineRequest complete;
  complete.set_deadline_id(met_);
  v1::CancelDeadlineRequest cancel;
  cancel.set_deadline_id(cancelled_);
  cancel.set_reason_code("NO_LONGER_APPLIES");
  v1::GetDeadlineRequest get;
  get.set_deadline_id(running_);
  v1::ListDeadlinesRequest list;
  list.set_target_request_id(request_id_);
  v1::GetDeadlineRulesRequest rules;

  using S = v1::DeadlineService::Stub;
  struct Rpc {
    std::string name;
    std::function<Code(const Who&)> call;
    Row want;
  };
  const std::vector<Rpc> rpcs = {
      {"StartDeadline",
       [&](const Who& w) {
         return Call<v1::StartDeadlineRequest, v1::StartDeadlineResponse>(w, &S::StartDeadline,
                                                                          start);
       },
       {OK, OK, OK, OK, NF, PD, PD, PD, OK, PD}},
      {"ExtendDeadline",
       [&](const Who& w) {
         return Call<v1::ExtendDeadlineRequest, v1::ExtendDeadlineResponse>(w, &S::ExtendDeadline,
                                                                            extend);
       },
       {PD, PD, FP, FP, NF, PD, PD, PD, FP, PD}},
      {"SuspendDeadline",
       [&](const Who& w) {
         return Call<v1::SuspendDeadlineRequest, v1::SuspendDeadlineResponse>(
             w, &S::SuspendDeadline, suspend);
       },
       {PD, PD, PD, PD, PD, PD, PD, FP, FP, PD}},
      {"ResumeDeadline",
       [&](const Who& w) {
         return Call<v1::ResumeDeadlineRequest, v1::ResumeDeadlineResponse>(w, &S::ResumeDeadline,
                                                                            resume);
       },
       {PD, PD, PD, PD, PD, PD, PD, FP, FP, PD}},
      {"CompleteDeadline",
       [&](const Who& w) {
         return Call<v1::CompleteDeadlineRequest, v1::CompleteDeadlineResponse>(
             w, &S::CompleteDeadline, complete);
       },
       {PD, PD, OK, OK, NF, PD, PD, PD, OK, PD}},
      {"CancelDeadline",
       [&](const Who& w) {
         return Call<v1::CancelDeadlineRequest, v1::CancelDeadlineResponse>(w, &S::CancelDeadline,
                                                                            cancel);
       },
       {PD, PD, OK, OK, NF, PD, PD, PD, OK, PD}},
      {"GetDeadline",
       [&](const Who& w) {
         return Call<v1::GetDeadlineRequest, v1::GetDeadlineResponse>(w, &S::GetDeadline, get);
       },
       {OK, OK, OK, OK, NF, PD, OK, PD, OK, PD}},
      {"ListDeadlines",
       [&](const Who& w) {
         return Call<v1::ListDeadlinesRequest, v1::ListDeadlinesResponse>(w, &S::ListDeadlines,
                                                                          list);
       },
       {OK, OK, OK, OK, OK, PD, OK, PD, OK, PD}},
      {"GetDeadlineRules",
       [&](const Who& w) {
         return Call<v1::GetDeadlineRulesRequest, v1::GetDeadlineRulesResponse>(
             w, &S::GetDeadlineRules, rules);
       },
       {OK, OK, OK, OK, OK, OK, OK, OK, OK, OK}},
  };
  // Every RPC of the service is walked.
  const auto* descriptor =
      v1::GetDeadlineRequest::descriptor()->file()->FindServiceByName("DeadlineService");
  ASSERT_EQ(static_cast<size_t>(descriptor->method_count()), rpcs.size());
  for (const Rpc& rpc : rpcs) {
    ASSERT_EQ(rpc.want.size(), Everyone().size()) << rpc.name;
    for (size_t i = 0; i < Everyone().size(); ++i) {
      const Who& who = Everyone()[i];
      EXPECT_EQ(rpc.call(who), rpc.want[i]) << rpc.name << " as " << who.name;
    }
  }
  // Nothing the refused callers tried stuck: the running deadline still runs.
  EXPECT_EQ(Get(running_)->state(), v1::DEADLINE_STATE_RUNNING);
}

TEST_F(DeadlineAuthzTest, AnOperatorSuspendsAndResumesWithAReason) {
  v1::SuspendDeadlineRequest suspend;
  suspend.set_deadline_id(running_);
  using S = v1::DeadlineService::Stub;
  EXPECT_EQ((Call<v1::SuspendDeadlineRequest, v1::SuspendDeadlineResponse>(
                kOperator, &S::SuspendDeadline, suspend)),
            Code::INVALID_ARGUMENT);
  suspend.set_reason_code("COURT_ORDER");
  EXPECT_EQ((Call<v1::SuspendDeadlineRequest, v1::SuspendDeadlineResponse>(
                kOperator, &S::SuspendDeadline, suspend)),
            OK);
  EXPECT_EQ(Get(running_)->state(), v1::DEADLINE_STATE_SUSPENDED);
  v1::ResumeDeadlineRequest resume;
  resume.set_deadline_id(running_);
  EXPECT_EQ((Call<v1::ResumeDeadlineRequest, v1::ResumeDeadlineResponse>(
                kOperator, &S::ResumeDeadline, resume)),
            Code::INVALID_ARGUMENT);
  resume.set_reason_code("COURT_ORDER_LIFTED");
  EXPECT_EQ((Call<v1::ResumeDeadlineRequest, v1::ResumeDeadlineResponse>(
                kOperator, &S::ResumeDeadline, resume)),
            OK);
  EXPECT_EQ(Get(running_)->state(), v1::DEADLINE_STATE_RUNNING);
}

TEST_F(DeadlineAuthzTest, DenialsOfExistingAndMissingIdsAreLoggedAlikeAndAuditorsPageThem) {
  using S = v1::DeadlineService::Stub;
  // A stranger reads an existing deadline (outside its reach) and a missing one: the same
  // NOT_FOUND, ...
  const std::string missing = common::Sharding::MakeId("dl", 2, clock_.Now());
  v1::GetDeadlineRequest get;
  get.set_deadline_id(running_);
  EXPECT_EQ(
      (Call<v1::GetDeadlineRequest, v1::GetDeadlineResponse>(kStranger, &S::GetDeadline, get)), NF);
  get.set_deadline_id(missing);
  EXPECT_EQ(
      (Call<v1::GetDeadlineRequest, v1::GetDeadlineResponse>(kStranger, &S::GetDeadline, get)), NF);
  // ... and both are in its denial log, written before the answers, in the same shape.
  auto raw = common::RunRedisCommand(
      *redis_, {"XRANGE", common::DenialLogKey(*sharding_, kStranger.authority), "-", "+"});
  ASSERT_TRUE(raw.ok());
  ASSERT_EQ(raw->elements.size(), 2u);
  auto fields = [](const common::RedisReply& entry) {
    std::vector<std::string> names;
    for (size_t i = 0; i < entry.elements[1].elements.size(); i += 2) {
      names.push_back(entry.elements[1].elements[i].str);
    }
    return names;
  };
  EXPECT_EQ(fields(raw->elements[0]), fields(raw->elements[1]));

  adminpb::ListDenialsResponse first, second;
  ASSERT_TRUE(Denials(kAuditor, kStranger.authority, 1, "", &first).ok());
  ASSERT_EQ(first.denials_size(), 1);
  ASSERT_FALSE(first.next_page_token().empty());
  ASSERT_TRUE(Denials(kAuditor, kStranger.authority, 1, first.next_page_token(), &second).ok());
  ASSERT_EQ(second.denials_size(), 1);
  EXPECT_TRUE(second.next_page_token().empty());
  const adminpb::Denial& a = first.denials(0);
  const adminpb::Denial& b = second.denials(0);
  EXPECT_EQ(a.target_id(), running_);
  EXPECT_EQ(b.target_id(), missing);
  for (const adminpb::Denial* d : {&a, &b}) {
    EXPECT_EQ(d->method(), "GetDeadline");
    EXPECT_EQ(d->code(), "NOT_FOUND");
    EXPECT_EQ(d->caller_authority_id(), kStranger.authority);
    EXPECT_EQ(d->caller_state(), "BE");
    EXPECT_EQ(std::vector<std::string>(d->caller_roles().begin(), d->caller_roles().end()),
              std::vector<std::string>{"issuing"});
    EXPECT_FALSE(d->caller_is_service());
    EXPECT_EQ(d->trace_id().size(), 32u);
    EXPECT_EQ(d->time().seconds(), absl::ToUnixSeconds(clock_.Now()));
  }
  // The same shape: only the id and the trace differ.
  adminpb::Denial a2 = a, b2 = b;
  for (adminpb::Denial* d : {&a2, &b2}) {
    d->clear_target_id();
    d->clear_trace_id();
  }
  EXPECT_EQ(a2.SerializeAsString(), b2.SerializeAsString());

  // A refusal by role (the issuer completing a deadline) is logged as well.
  v1::CompleteDeadlineRequest complete;
  complete.set_deadline_id(running_);
  EXPECT_EQ((Call<v1::CompleteDeadlineRequest, v1::CompleteDeadlineResponse>(
                kIssuer, &S::CompleteDeadline, complete)),
            PD);
  adminpb::ListDenialsResponse issuer;
  ASSERT_TRUE(Denials(kOperator, kIssuer.authority, 0, "", &issuer).ok());
  ASSERT_EQ(issuer.denials_size(), 1);
  EXPECT_EQ(issuer.denials(0).method(), "CompleteDeadline");
  EXPECT_EQ(issuer.denials(0).code(), "PERMISSION_DENIED");
  EXPECT_EQ(issuer.denials(0).target_id(), running_);
}

TEST_F(DeadlineAuthzTest, OnlyAuditorsAndOperatorsReadTheDenialLog) {
  for (const Who& who : Everyone()) {
    adminpb::ListDenialsResponse out;
    const grpc::Status s = Denials(who, kStranger.authority, 0, "", &out);
    const bool allowed = who.roles == "auditor" || who.roles == "operator";
    EXPECT_EQ(s.error_code(), allowed ? OK : PD) << who.name;
  }
  // A gate refusal is recorded without holding up the answer: it appears shortly.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  adminpb::ListDenialsResponse issuer;
  while (absl::Now() < give_up) {
    issuer.Clear();
    ASSERT_TRUE(Denials(kAuditor, kIssuer.authority, 0, "", &issuer).ok());
    if (issuer.denials_size() > 0) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(issuer.denials_size(), 1);
  EXPECT_EQ(issuer.denials(0).method(), "ListDenials");
  EXPECT_EQ(issuer.denials(0).code(), "PERMISSION_DENIED");
}

TEST_F(DeadlineAuthzTest, TheDenialLogIsBoundedPerCallerAndFiltersByTime) {
  common::RedisDenialLogOptions options;
  options.max_entries = 10;
  options.retention = absl::Minutes(5);
  common::RedisDenialLog log(*redis_, clock_, *sharding_, options);
  const absl::Time start = clock_.Now();
  for (int i = 0; i < 400; ++i) {
    common::DenialRecord r;
    r.method = "GetDeadline";
    r.code = absl::StatusCode::kNotFound;
    r.target_id = absl::StrCat("dl-1-", i);
    r.caller.authority_id = "FLOODER-1";
    r.caller.roles = {"issuing"};
    Waiter<absl::Status> w;
    log.Record(r, w.Callback());
    ASSERT_TRUE(w.Get().ok());
    clock_.Advance(absl::Seconds(1));
  }
  const std::string key = common::DenialLogKey(*sharding_, "FLOODER-1");
  // Capped (XADD MAXLEN ~ trims whole stream nodes of 100 entries) and expiring.
  auto length = common::RunRedisCommand(*redis_, {"XLEN", key});
  ASSERT_TRUE(length.ok());
  EXPECT_GE(length->integer, 10);
  EXPECT_LE(length->integer, 10 + 100);
  auto ttl = common::RunRedisCommand(*redis_, {"PTTL", key});
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(ttl->integer, 0);
  EXPECT_LE(ttl->integer, 5 * 60 * 1000);
  // A time window of the last 5 records, through the auditor's RPC.
  grpc::ClientContext ctx;
  As(ctx, kAuditor);
  adminpb::ListDenialsRequest req;
  req.set_authority_id("FLOODER-1");
  req.mutable_start_time()->set_seconds(absl::ToUnixSeconds(start + absl::Seconds(395)));
  req.mutable_end_time()->set_seconds(absl::ToUnixSeconds(start + absl::Seconds(400)));
  adminpb::ListDenialsResponse out;
  ASSERT_TRUE(audit_stub_->ListDenials(&ctx, req, &out).ok());
  ASSERT_EQ(out.denials_size(), 5);
  EXPECT_EQ(out.denials(0).target_id(), "dl-1-395");
  EXPECT_EQ(out.denials(4).target_id(), "dl-1-399");
  EXPECT_TRUE(out.next_page_token().empty());
}

TEST(DenialTargetIdTest, OnlyIdsEnterTheLog) {
  EXPECT_EQ(common::DenialTargetId("rq-3-01j0abc"), "rq-3-01j0abc");
  EXPECT_EQ(common::DenialTargetId("sub-1-01j/1-0"), "sub-1-01j/1-0");
  EXPECT_EQ(common::DenialTargetId("Jean Dupont"), "");
  EXPECT_EQ(common::DenialTargetId(std::string(129, 'a')), "");
}

}  // namespace
}  // namespace rogatory::deadlines::testing

namespace rogatory::deadlines::testing {
namespace {

// Issue 20, item 2: the deadline's etag changes with every change; a change sent with a
// stale etag is refused ABORTED, reason STALE_ETAG with a google.rpc.PreconditionFailure,
// and changes nothing; every refusal of the service carries ErrorInfo (domain rogatory)
// with its reason.
TEST_F(DeadlineAuthzTest, EtagsGuardChangesAndEveryErrorCarriesItsReason) {
  auto get = [&](const std::string& id) {
    grpc::ClientContext ctx;
    As(ctx, kExecutor);
    v1::GetDeadlineRequest req;
    req.set_deadline_id(id);
    v1::GetDeadlineResponse resp;
    EXPECT_TRUE(stub_->GetDeadline(&ctx, req, &resp).ok());
    return resp.deadline();
  };
  const v1::Deadline first = get(running_);
  ASSERT_FALSE(first.etag().empty());

  // A change with the current etag applies and answers the new etag.
  v1::ExtendDeadlineRequest extend;
  extend.set_deadline_id(running_);
  extend.mutable_by()->set_seconds(86400);
  extend.set_reason_code("COMPLEX_CASE");
  extend.set_etag(first.etag());
  v1::ExtendDeadlineResponse extended;
  {
    grpc::ClientContext ctx;
    As(ctx, kExecutor);
    grpc::Status s = stub_->ExtendDeadline(&ctx, extend, &extended);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_NE(extended.deadline().etag(), first.etag());
  EXPECT_EQ(get(running_).etag(), extended.deadline().etag());

  // The same etag again is stale: refused, nothing changes.
  auto expect_reason = [&](const grpc::Status& s, grpc::StatusCode code, const std::string& reason,
                           const std::string& what) {
    EXPECT_EQ(s.error_code(), code) << what << ": " << s.error_message();
    auto info = common::GetErrorInfo(s);
    ASSERT_TRUE(info.has_value()) << what;
    EXPECT_EQ(info->domain(), "rogatory") << what;
    EXPECT_EQ(info->reason(), reason) << what;
  };
  {
    grpc::ClientContext ctx;
    As(ctx, kExecutor);
    v1::ExtendDeadlineResponse resp;
    const grpc::Status s = stub_->ExtendDeadline(&ctx, extend, &resp);
    expect_reason(s, grpc::StatusCode::ABORTED, "STALE_ETAG", "stale extend");
    EXPECT_EQ(common::GetErrorInfo(s)->metadata().at("current_etag"), extended.deadline().etag());
    auto failure = common::GetPreconditionFailure(s);
    ASSERT_TRUE(failure.has_value());
    ASSERT_EQ(failure->violations_size(), 1);
    EXPECT_EQ(failure->violations(0).type(), "STALE_ETAG");
    EXPECT_EQ(failure->violations(0).subject(), running_);
  }
  EXPECT_EQ(get(running_).etag(), extended.deadline().etag());
  for (const std::string stale_rpc : {"complete", "cancel"}) {
    grpc::ClientContext ctx;
    As(ctx, kExecutor);
    grpc::Status s;
    if (stale_rpc == "complete") {
      v1::CompleteDeadlineRequest req;
      req.set_deadline_id(running_);
      req.set_etag(first.etag());
      v1::CompleteDeadlineResponse resp;
      s = stub_->CompleteDeadline(&ctx, req, &resp);
    } else {
      v1::CancelDeadlineRequest req;
      req.set_deadline_id(running_);
      req.set_reason_code("NO_LONGER_APPLIES");
      req.set_etag(first.etag());
      v1::CancelDeadlineResponse resp;
      s = stub_->CancelDeadline(&ctx, req, &resp);
    }
    expect_reason(s, grpc::StatusCode::ABORTED, "STALE_ETAG", stale_rpc);
  }
  for (const std::string rpc : {"suspend", "resume"}) {
    grpc::ClientContext ctx;
    As(ctx, kOperator);
    grpc::Status s;
    if (rpc == "suspend") {
      v1::SuspendDeadlineRequest req;
      req.set_deadline_id(running_);
      req.set_reason_code("COURT_ORDER");
      req.set_etag(first.etag());
      v1::SuspendDeadlineResponse resp;
      s = stub_->SuspendDeadline(&ctx, req, &resp);
    } else {
      v1::ResumeDeadlineRequest req;
      req.set_deadline_id(running_);
      req.set_reason_code("COURT_ORDER");
      req.set_etag(first.etag());
      v1::ResumeDeadlineResponse resp;
      s = stub_->ResumeDeadline(&ctx, req, &resp);
    }
    expect_reason(s, grpc::StatusCode::ABORTED, "STALE_ETAG", rpc);
  }
  EXPECT_EQ(get(running_).state(), v1::DEADLINE_STATE_RUNNING);

  // Other refusals, each with its reason.
  {
    grpc::ClientContext ctx;  // a bad field
    As(ctx, kExecutor);
    v1::ExtendDeadlineRequest bad;
    bad.set_deadline_id(running_);
    v1::ExtendDeadlineResponse resp;
    expect_reason(stub_->ExtendDeadline(&ctx, bad, &resp), grpc::StatusCode::INVALID_ARGUMENT,
                  "INVALID_FIELD", "bad field");
  }
  {
    grpc::ClientContext ctx;  // a state that does not allow the change
    As(ctx, kExecutor);
    v1::ExtendDeadlineRequest late;
    late.set_deadline_id(cancelled_);
    late.mutable_by()->set_seconds(86400);
    late.set_reason_code("COMPLEX_CASE");
    v1::ExtendDeadlineResponse resp;
    expect_reason(stub_->ExtendDeadline(&ctx, late, &resp), grpc::StatusCode::FAILED_PRECONDITION,
                  "TRANSITION_NOT_ALLOWED", "extend a cancelled deadline");
  }
  {
    grpc::ClientContext ctx;  // outside the caller's reach
    As(ctx, kStranger);
    v1::GetDeadlineRequest req;
    req.set_deadline_id(running_);
    v1::GetDeadlineResponse resp;
    expect_reason(stub_->GetDeadline(&ctx, req, &resp), grpc::StatusCode::NOT_FOUND, "NOT_FOUND",
                  "stranger");
  }
  {
    grpc::ClientContext ctx;  // the role table refuses
    As(ctx, kIssuer);
    v1::CompleteDeadlineRequest req;
    req.set_deadline_id(running_);
    v1::CompleteDeadlineResponse resp;
    expect_reason(stub_->CompleteDeadline(&ctx, req, &resp), grpc::StatusCode::PERMISSION_DENIED,
                  "PERMISSION_DENIED", "issuer completes");
  }
  {
    grpc::ClientContext ctx;  // no caller
    v1::GetDeadlineRequest req;
    req.set_deadline_id(running_);
    v1::GetDeadlineResponse resp;
    expect_reason(stub_->GetDeadline(&ctx, req, &resp), grpc::StatusCode::UNAUTHENTICATED,
                  "UNAUTHENTICATED", "no caller");
  }
  {
    grpc::ClientContext ctx;  // a page token this service did not issue
    As(ctx, kExecutor);
    v1::ListDeadlinesRequest req;
    req.set_target_request_id(request_id_);
    req.set_page_token("not-a-token");
    v1::ListDeadlinesResponse resp;
    expect_reason(stub_->ListDeadlines(&ctx, req, &resp), grpc::StatusCode::INVALID_ARGUMENT,
                  "PAGE_TOKEN_INVALID", "page token");
  }
}

}  // namespace
}  // namespace rogatory::deadlines::testing
