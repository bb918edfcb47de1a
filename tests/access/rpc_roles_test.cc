// Issue 16, item 6: one role x RPC table (common/include/rogatory/common/rpc_roles.h) for
// every RPC of every service. Walks the whole table: for every RPC and every role column
// the gate lets exactly the expected callers through (PERMISSION_DENIED for the others,
// whatever they name); every RPC the services serve (from their descriptors) has a row, and
// every row an RPC; and the per-request check sends each side where the table says. The
// expected cells are written out here from the issue, not read from the table they check.
#include "rogatory/common/rpc_roles.h"

#include <map>
#include <set>
#include <string>

#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "rogatory/admin/v1/audit.grpc.pb.h"
#include "rogatory/admin/v1/test_clock.grpc.pb.h"
#include "rogatory/bench/v1/echo.grpc.pb.h"
#include "rogatory/deadlines/v1/deadlines.grpc.pb.h"
#include "rogatory/events/v1/event_sink.grpc.pb.h"
#include "rogatory/intake/v1/intake.grpc.pb.h"
#include "rogatory/notification/v1/notification.grpc.pb.h"
#include "rogatory/routing/v1/routing.grpc.pb.h"

namespace rogatory::common {
namespace {

// Every service a Rogatory binary serves behind the pipeline (health and reflection are
// outside it: open to every caller, they name nothing).
const std::vector<const google::protobuf::ServiceDescriptor*>& Served() {
  static const auto* served = new std::vector<const google::protobuf::ServiceDescriptor*>{
      intake::v1::SubmitRequestRequest::descriptor()->file()->FindServiceByName("IntakeService"),
      routing::v1::GetRoutingDecisionRequest::descriptor()->file()->FindServiceByName(
          "TranslationRoutingService"),
      deadlines::v1::GetDeadlineRequest::descriptor()->file()->FindServiceByName("DeadlineService"),
      notification::v1::PublishEventRequest::descriptor()->file()->FindServiceByName(
          "NotificationService"),
      events::v1::DeliverEventsRequest::descriptor()->file()->FindServiceByName("EventSinkService"),
      admin::v1::ListDenialsRequest::descriptor()->file()->FindServiceByName("AuditService"),
      admin::v1::GetTimeRequest::descriptor()->file()->FindServiceByName("TestClockService"),
      // rogatory-echo, the benchmark's baseline server on the same platform.
      bench::v1::EchoRequest::descriptor()->file()->FindServiceByName("EchoService"),
  };
  return *served;
}

// Cells: '-' refused, 'a' every call, 'r' the requests in reach, 'o' its own things,
// 'i' issuing side, 'e' executing side, 's' either side. Columns: issuing, central,
// executing, translator, auditor, operator, service, no roles.
const std::map<std::string, std::string>& Expected() {
  static const auto* expected = new std::map<std::string, std::string>{
      // intake
      {"SubmitRequest", "iii---a-"},
      {"GetRequest", "rrr-a-a-"},
      {"ListRequests", "rrr-a-a-"},
      {"GetRequestHistory", "rrr-a-a-"},
      {"TransitionRequest", "eee---a-"},
      {"AcknowledgeRequest", "eee---a-"},
      {"SupplementRequest", "iii---a-"},
      {"WithdrawRequest", "iii---a-"},
      {"UploadDocument", "rrro--a-"},
      {"DownloadDocument", "rrroa-a-"},
      {"ListDocuments", "rrroa-a-"},
      {"StartDocumentUpload", "rrro--a-"},
      {"UploadDocumentChunk", "rrro--a-"},
      {"CommitDocumentUpload", "rrro--a-"},
      // routing
      {"GetRoutingDecision", "rrr-a-a-"},
      {"PreviewRouting", "aaaaaaaa"},
      {"GetDeclaration", "aaaaaaaa"},
      {"ListDeclarations", "aaaaaaaa"},
      {"ListTranslationJobs", "rrroaoa-"},
      {"GetTranslationJob", "rrroa-a-"},
      {"ClaimTranslationJob", "---a----"},
      {"HeartbeatTranslationJob", "---o----"},
      {"CompleteTranslationJob", "---o----"},
      {"FailTranslationJob", "---o----"},
      // deadlines: the executing side meets, extends and cancels its time limits; operators
      // suspend and resume (with a reason); either side starts one.
      {"StartDeadline", "sss---a-"},
      {"ExtendDeadline", "eee---a-"},
      {"SuspendDeadline", "-----aa-"},
      {"ResumeDeadline", "-----aa-"},
      {"CompleteDeadline", "eee---a-"},
      {"CancelDeadline", "eee---a-"},
      {"GetDeadline", "rrr-a-a-"},
      {"ListDeadlines", "rrr-a-a-"},
      {"GetDeadlineRules", "aaaaaaaa"},
      // notification
      {"PublishEvent", "------a-"},
      {"Subscribe", "oooooooo"},
      {"Ack", "oooooooo"},
      {"CreateSubscription", "oooooooo"},
      {"ListSubscriptions", "oooooooo"},
      {"DeleteSubscription", "oooooooo"},
      {"RotateSubscriptionSecret", "oooooooo"},
      {"GetDeliveryStatus", "rrroa-a-"},
      {"ListDeadLetters", "oooooaoo"},
      {"RedriveDeadLetter", "oooooaoo"},
      // the event sink
      {"DeliverEvents", "------a-"},
      // admin
      {"VerifyAuditChain", "----aa--"},
      {"ListAuditEntries", "----aa--"},
      {"ListDenials", "----aa--"},
      {"GetTime", "aaaaaaaa"},
      {"AdvanceTime", "-----aa-"},
      {"SetTime", "-----aa-"},
      // the benchmark's echo server
      {"Echo", "aaaaaaaa"},
  };
  return *expected;
}

char Cell(Grant g) {
  switch (g) {
    case Grant::kNo:
      return '-';
    case Grant::kAll:
      return 'a';
    case Grant::kReach:
      return 'r';
    case Grant::kOwn:
      return 'o';
    case Grant::kIssuingSide:
      return 'i';
    case Grant::kExecutingSide:
      return 'e';
    case Grant::kEitherSide:
      return 's';
  }
  return '?';
}

// One caller per column.
Caller ColumnCaller(int column) {
  Caller c;
  c.authority_id = "X-1";
  c.state = "DE";
  switch (static_cast<RoleColumn>(column)) {
    case RoleColumn::kService:
      c.authority_id = "rogatory-intake";
      c.roles = {"service"};
      c.is_service = true;
      break;
    case RoleColumn::kNoRole:
      break;
    default:
      c.roles = {std::string(RoleColumnName(static_cast<RoleColumn>(column)))};
  }
  return c;
}

TEST(RpcRolesTableTest, EveryServedRpcHasARowAndEveryRowAServedRpc) {
  std::set<std::string> served;
  for (const auto* service : Served()) {
    ASSERT_NE(service, nullptr);
    for (int m = 0; m < service->method_count(); ++m) {
      const std::string method = service->method(m)->name();
      served.insert(method);
      const RpcRoleRule* rule = FindRpcRule(method);
      ASSERT_NE(rule, nullptr) << service->full_name() << "/" << method
                               << " is served but has no row in the role table";
      EXPECT_EQ(rule->service, service->full_name()) << method;
      if (!rule->target_field.empty()) {
        const auto* field =
            service->method(m)->input_type()->FindFieldByName(std::string(rule->target_field));
        ASSERT_NE(field, nullptr) << method << " has no field " << rule->target_field;
        EXPECT_EQ(field->type(), google::protobuf::FieldDescriptor::TYPE_STRING) << method;
      }
    }
  }
  std::set<std::string> rows;
  for (const RpcRoleRule& rule : RpcRoleTable()) {
    EXPECT_TRUE(rows.insert(std::string(rule.method)).second)
        << rule.method << ": short method names must be unique across the table";
    EXPECT_TRUE(served.count(std::string(rule.method))) << rule.method << " is served by none";
  }
  EXPECT_EQ(rows, served);
}

TEST(RpcRolesTableTest, EveryRoleAgainstEveryRpc) {
  std::set<std::string> walked;
  int cells = 0;
  for (const RpcRoleRule& rule : RpcRoleTable()) {
    const std::string method(rule.method);
    auto want = Expected().find(method);
    ASSERT_NE(want, Expected().end()) << method << " is missing from the expected table";
    ASSERT_EQ(want->second.size(), static_cast<size_t>(kRoleColumnCount)) << method;
    walked.insert(method);
    for (int c = 0; c < kRoleColumnCount; ++c) {
      const std::string column(RoleColumnName(static_cast<RoleColumn>(c)));
      EXPECT_EQ(Cell(rule.grants[c]), want->second[c]) << method << " as " << column;
      const absl::Status gate = CheckRpcRoles(ColumnCaller(c), method);
      if (want->second[c] == '-') {
        EXPECT_EQ(gate.code(), absl::StatusCode::kPermissionDenied) << method << " as " << column;
      } else {
        EXPECT_TRUE(gate.ok()) << method << " as " << column << ": " << gate;
      }
      ++cells;
    }
  }
  EXPECT_EQ(walked.size(), Expected().size());
  EXPECT_EQ(cells, static_cast<int>(Expected().size()) * kRoleColumnCount);
}

TEST(RpcRolesTableTest, AnRpcWithoutARowIsRefused) {
  Caller service = ColumnCaller(static_cast<int>(RoleColumn::kService));
  EXPECT_EQ(CheckRpcRoles(service, "NoSuchMethod").code(), absl::StatusCode::kPermissionDenied);
}

TEST(RpcRolesTableTest, AnyRoleTheRowGrantsLetsACallerWithSeveralRolesIn) {
  Caller c = ColumnCaller(static_cast<int>(RoleColumn::kTranslator));
  EXPECT_EQ(CheckRpcRoles(c, "SuspendDeadline").code(), absl::StatusCode::kPermissionDenied);
  c.roles.push_back("operator");
  EXPECT_TRUE(CheckRpcRoles(c, "SuspendDeadline").ok());
}

// The side check on one request: issued by FR-TJ (FR) to Germany, executed by DE-STA.
class RpcOnRequestTest : public ::testing::Test {
 protected:
  RpcOnRequestTest() {
    parties_.issuing_authority_id = "FR-TJ";
    parties_.issuing_state = "FR";
    parties_.executing_authority_id = "DE-STA";
    parties_.requested_state = "DE";
    parties_.notified_authority_id = "DE-ENF";
  }
  absl::StatusCode Code(const std::string& method, const std::string& who, const std::string& state,
                        std::vector<std::string> roles, AccessKind kind = AccessKind::kChange) {
    CallContext call;
    call.method = method;
    call.caller.authority_id = who;
    call.caller.state = state;
    call.caller.roles = std::move(roles);
    call.caller.is_service = call.caller.HasRole("service");
    return CheckRpcOnRequest(call, parties_, "rq-1-x", kind).code();
  }
  RequestParties parties_;
};

TEST_F(RpcOnRequestTest, TheExecutingSideCompletesCancelsAndExtendsItsTimeLimits) {
  for (const std::string method : {"CompleteDeadline", "CancelDeadline", "ExtendDeadline"}) {
    SCOPED_TRACE(method);
    EXPECT_EQ(Code(method, "DE-STA", "DE", {"executing"}), absl::StatusCode::kOk);
    EXPECT_EQ(Code(method, "DE-BFJ", "DE", {"central"}), absl::StatusCode::kOk);
    EXPECT_EQ(Code(method, "rogatory-intake", "", {"service"}), absl::StatusCode::kOk);
    // The issuing side reaches the request but does not meet the executing side's limits.
    EXPECT_EQ(Code(method, "FR-TJ", "FR", {"issuing"}), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(Code(method, "FR-BEPI", "FR", {"central"}), absl::StatusCode::kPermissionDenied);
    // The notified authority reads, the auditor reads; a stranger learns nothing.
    EXPECT_EQ(Code(method, "DE-ENF", "DE", {"executing"}), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(Code(method, "EU-AUD", "FR", {"auditor"}), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(Code(method, "BE-PQ", "BE", {"issuing"}), absl::StatusCode::kNotFound);
    EXPECT_EQ(Code(method, "IT-PQ", "IT", {"executing"}), absl::StatusCode::kNotFound);
  }
}

TEST_F(RpcOnRequestTest, EitherSideStartsADeadlineAndOperatorsSuspendWhateverTheRequest) {
  EXPECT_EQ(Code("StartDeadline", "FR-TJ", "FR", {"issuing"}), absl::StatusCode::kOk);
  EXPECT_EQ(Code("StartDeadline", "DE-STA", "DE", {"executing"}), absl::StatusCode::kOk);
  EXPECT_EQ(Code("StartDeadline", "DE-ENF", "DE", {"executing"}),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code("StartDeadline", "BE-PQ", "BE", {"issuing"}), absl::StatusCode::kNotFound);
  for (const std::string method : {"SuspendDeadline", "ResumeDeadline"}) {
    SCOPED_TRACE(method);
    EXPECT_EQ(Code(method, "OPS-1", "", {"operator"}), absl::StatusCode::kOk);
    EXPECT_EQ(Code(method, "DE-STA", "DE", {"executing"}), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(Code(method, "FR-TJ", "FR", {"issuing"}), absl::StatusCode::kPermissionDenied);
    // Refused by role, not by reach: a stranger is told the same as a party.
    EXPECT_EQ(Code(method, "BE-PQ", "BE", {"issuing"}), absl::StatusCode::kPermissionDenied);
  }
}

TEST_F(RpcOnRequestTest, ReadsFollowReach) {
  EXPECT_EQ(Code("GetDeadline", "FR-TJ", "FR", {"issuing"}, AccessKind::kRead),
            absl::StatusCode::kOk);
  EXPECT_EQ(Code("GetDeadline", "DE-ENF", "DE", {"executing"}, AccessKind::kRead),
            absl::StatusCode::kOk);
  EXPECT_EQ(Code("GetDeadline", "EU-AUD", "FR", {"auditor"}, AccessKind::kRead),
            absl::StatusCode::kOk);
  EXPECT_EQ(Code("GetDeadline", "BE-PQ", "BE", {"issuing"}, AccessKind::kRead),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Code("GetDeadline", "OPS-1", "", {"operator"}, AccessKind::kRead),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code("GetDeadline", "XL-1", "DE", {"translator"}, AccessKind::kRead),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace rogatory::common
