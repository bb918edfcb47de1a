#include "rogatory/common/rpc_roles.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace rogatory::common {
namespace {

constexpr Grant N = Grant::kNo;
constexpr Grant A = Grant::kAll;
constexpr Grant R = Grant::kReach;
constexpr Grant O = Grant::kOwn;
constexpr Grant I = Grant::kIssuingSide;
constexpr Grant E = Grant::kExecutingSide;
constexpr Grant S = Grant::kEitherSide;

constexpr char kIntake[] = "rogatory.intake.v1.IntakeService";
constexpr char kRouting[] = "rogatory.routing.v1.TranslationRoutingService";
constexpr char kDeadlines[] = "rogatory.deadlines.v1.DeadlineService";
constexpr char kNotification[] = "rogatory.notification.v1.NotificationService";
constexpr char kEventSink[] = "rogatory.events.v1.EventSinkService";
constexpr char kAudit[] = "rogatory.admin.v1.AuditService";
constexpr char kTestClock[] = "rogatory.admin.v1.TestClockService";
constexpr char kBenchEcho[] = "rogatory.bench.v1.EchoService";

// Columns: issuing, central, executing, translator, auditor, operator, service, no roles.
// Authorities (issuing, central, executing) act for a side per request: which side they
// are on follows from the request's parties (common/access.h), not from the role name, so
// their three columns agree on every row.
// One row per line, as tools/docs/rpc_roles_table.py reads the table.
// clang-format off
const RpcRoleRule kTable[] = {
    // intake
    {kIntake, "SubmitRequest", {I, I, I, N, N, N, A, N}, "",
     "in its own name and state only (issuing side of the content)"},
    {kIntake, "GetRequest", {R, R, R, N, A, N, A, N}, "id", ""},
    {kIntake, "ListRequests", {R, R, R, N, A, N, A, N}, "", "lists what it reaches"},
    {kIntake, "GetRequestHistory", {R, R, R, N, A, N, A, N}, "id", ""},
    {kIntake, "TransitionRequest", {E, E, E, N, N, N, A, N}, "id",
     "each target status names its side (lifecycle.cc); the notified authority objects"},
    {kIntake, "AcknowledgeRequest", {E, E, E, N, N, N, A, N}, "id", ""},
    {kIntake, "SupplementRequest", {I, I, I, N, N, N, A, N}, "id", ""},
    {kIntake, "WithdrawRequest", {I, I, I, N, N, N, A, N}, "id", ""},
    {kIntake, "UploadDocument", {R, R, R, O, N, N, A, N}, "",
     "a translator: the translation of a document whose job it holds"},
    {kIntake, "DownloadDocument", {R, R, R, O, A, N, A, N}, "id",
     "a translator: the documents of the jobs it holds"},
    {kIntake, "ListDocuments", {R, R, R, O, A, N, A, N}, "id", ""},
    {kIntake, "StartDocumentUpload", {R, R, R, O, N, N, A, N}, "",
     "as UploadDocument (chunked, for browsers)"},
    {kIntake, "UploadDocumentChunk", {R, R, R, O, N, N, A, N}, "",
     "the authority that started the upload only"},
    {kIntake, "CommitDocumentUpload", {R, R, R, O, N, N, A, N}, "",
     "the authority that started the upload only"},
    // translation-routing
    {kRouting, "GetRoutingDecision", {R, R, R, N, A, N, A, N}, "request_id", ""},
    {kRouting, "PreviewRouting", {A, A, A, A, A, A, A, A}, "", "the declarations are public law"},
    {kRouting, "GetDeclaration", {A, A, A, A, A, A, A, A}, "", ""},
    {kRouting, "ListDeclarations", {A, A, A, A, A, A, A, A}, "", ""},
    {kRouting, "ListTranslationJobs", {R, R, R, O, A, O, A, N}, "request_id",
     "an operator: the claimable queue"},
    {kRouting, "GetTranslationJob", {R, R, R, O, A, N, A, N}, "job_id", ""},
    {kRouting, "ClaimTranslationJob", {N, N, N, A, N, N, N, N}, "", ""},
    {kRouting, "HeartbeatTranslationJob", {N, N, N, O, N, N, N, N}, "job_id",
     "the job's last claimer"},
    {kRouting, "CompleteTranslationJob", {N, N, N, O, N, N, N, N}, "job_id", ""},
    {kRouting, "FailTranslationJob", {N, N, N, O, N, N, N, N}, "job_id", ""},
    // deadline-tracking
    {kDeadlines, "StartDeadline", {S, S, S, N, N, N, A, N}, "target_request_id", ""},
    {kDeadlines, "ExtendDeadline", {E, E, E, N, N, N, A, N}, "deadline_id",
     "with a reason, within the rule (EIO Art 12(5), EAW Art 17(4))"},
    {kDeadlines, "SuspendDeadline", {N, N, N, N, N, A, A, N}, "deadline_id",
     "with a reason (reason_code)"},
    {kDeadlines, "ResumeDeadline", {N, N, N, N, N, A, A, N}, "deadline_id",
     "with a reason (reason_code)"},
    {kDeadlines, "CompleteDeadline", {E, E, E, N, N, N, A, N}, "deadline_id",
     "the executing side meets its own time limits"},
    {kDeadlines, "CancelDeadline", {E, E, E, N, N, N, A, N}, "deadline_id",
     "the issuing side withdraws the request instead, which cancels its deadlines"},
    {kDeadlines, "GetDeadline", {R, R, R, N, A, N, A, N}, "deadline_id", ""},
    {kDeadlines, "ListDeadlines", {R, R, R, N, A, N, A, N}, "target_request_id",
     "lists what it reaches"},
    {kDeadlines, "GetDeadlineRules", {A, A, A, A, A, A, A, A}, "", "the rules are law"},
    // notification
    {kNotification, "PublishEvent", {N, N, N, N, N, N, A, N}, "", ""},
    {kNotification, "Subscribe", {O, O, O, O, O, O, O, O}, "", "its own inbox"},
    {kNotification, "Ack", {O, O, O, O, O, O, O, O}, "", "its own inbox"},
    {kNotification, "CreateSubscription", {O, O, O, O, O, O, O, O}, "", ""},
    {kNotification, "ListSubscriptions", {O, O, O, O, O, O, O, O}, "", ""},
    {kNotification, "DeleteSubscription", {O, O, O, O, O, O, O, O}, "subscription_id", ""},
    {kNotification, "RotateSubscriptionSecret", {O, O, O, O, O, O, O, O}, "subscription_id",
     ""},
    {kNotification, "GetDeliveryStatus", {R, R, R, O, A, N, A, N}, "request_id",
     "a translator: its own deliveries"},
    {kNotification, "ListDeadLetters", {O, O, O, O, O, A, O, O}, "", "operators: all"},
    {kNotification, "RedriveDeadLetter", {O, O, O, O, O, A, O, O}, "dead_letter_id",
     "operators: all"},
    // the event sink (between services)
    {kEventSink, "DeliverEvents", {N, N, N, N, N, N, A, N}, "", ""},
    // admin
    {kAudit, "VerifyAuditChain", {N, N, N, N, A, A, N, N}, "request_id", ""},
    {kAudit, "ListAuditEntries", {N, N, N, N, A, A, N, N}, "request_id", ""},
    {kAudit, "ListDenials", {N, N, N, N, A, A, N, N}, "", ""},
    {kTestClock, "GetTime", {A, A, A, A, A, A, A, A}, "", ""},
    {kTestClock, "AdvanceTime", {N, N, N, N, N, A, A, N}, "", "development and staging only"},
    {kTestClock, "SetTime", {N, N, N, N, N, A, A, N}, "", "development and staging only"},
    // the benchmark's baseline server (tools/bench/echo_server.cc), served by no service
    {kBenchEcho, "Echo", {A, A, A, A, A, A, A, A}, "", "rogatory-echo (benchmark) only"},
};
// clang-format on

const absl::flat_hash_map<std::string, const RpcRoleRule*>& ByMethod() {
  static const auto* map = [] {
    auto* m = new absl::flat_hash_map<std::string, const RpcRoleRule*>();
    for (const RpcRoleRule& rule : kTable) m->emplace(std::string(rule.method), &rule);
    return m;
  }();
  return *map;
}

Grant GrantOf(const RpcRoleRule& rule, RoleColumn column) {
  return rule.grants[static_cast<int>(column)];
}

std::string SideDenial(const RpcRoleRule& rule, const std::vector<Grant>& grants) {
  const bool issuing = std::count(grants.begin(), grants.end(), Grant::kIssuingSide) > 0;
  const bool executing = std::count(grants.begin(), grants.end(), Grant::kExecutingSide) > 0;
  std::string who;
  if (issuing && executing) {
    who = "the issuing or the executing side of the request";
  } else if (issuing) {
    who =
        "the issuing side of the request (its issuing authority or the central authority "
        "of the issuing state)";
  } else if (executing) {
    who =
        "the executing side of the request (its executing authority or the central "
        "authority of the requested state)";
  } else {
    who = "the issuing or the executing side of the request";
  }
  return absl::StrCat("only ", who, " may call ", rule.method);
}

}  // namespace

absl::string_view RoleColumnName(RoleColumn column) {
  switch (column) {
    case RoleColumn::kIssuing:
      return kRoleIssuing;
    case RoleColumn::kCentral:
      return kRoleCentral;
    case RoleColumn::kExecuting:
      return kRoleExecuting;
    case RoleColumn::kTranslator:
      return kRoleTranslator;
    case RoleColumn::kAuditor:
      return kRoleAuditor;
    case RoleColumn::kOperator:
      return kRoleOperator;
    case RoleColumn::kService:
      return "service";
    case RoleColumn::kNoRole:
      return "no roles";
  }
  return "?";
}

absl::string_view GrantSymbol(Grant grant) {
  switch (grant) {
    case Grant::kNo:
      return "—";
    case Grant::kAll:
      return "✓";
    case Grant::kReach:
      return "reach";
    case Grant::kOwn:
      return "own";
    case Grant::kIssuingSide:
      return "issuing side";
    case Grant::kExecutingSide:
      return "executing side";
    case Grant::kEitherSide:
      return "either side";
  }
  return "?";
}

absl::Span<const RpcRoleRule> RpcRoleTable() { return absl::MakeConstSpan(kTable); }

const RpcRoleRule* FindRpcRule(absl::string_view method) {
  const auto& map = ByMethod();
  auto it = map.find(method);
  return it == map.end() ? nullptr : it->second;
}

std::vector<RoleColumn> ColumnsOf(const Caller& caller) {
  std::vector<RoleColumn> columns;
  if (caller.is_service) columns.push_back(RoleColumn::kService);
  for (RoleColumn c : {RoleColumn::kIssuing, RoleColumn::kCentral, RoleColumn::kExecuting,
                       RoleColumn::kTranslator, RoleColumn::kAuditor, RoleColumn::kOperator}) {
    if (caller.HasRole(RoleColumnName(c))) columns.push_back(c);
  }
  if (columns.empty()) columns.push_back(RoleColumn::kNoRole);
  return columns;
}

absl::Status CheckRpcRoles(const Caller& caller, absl::string_view method) {
  const RpcRoleRule* rule = FindRpcRule(method);
  if (rule == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("no caller may call ", method, ": it has no row in the role table"));
  }
  for (RoleColumn c : ColumnsOf(caller)) {
    if (GrantOf(*rule, c) != Grant::kNo) return absl::OkStatus();
  }
  std::string allowed;
  for (int c = 0; c < kRoleColumnCount; ++c) {
    if (rule->grants[c] == Grant::kNo) continue;
    absl::StrAppend(&allowed, allowed.empty() ? "" : ", ",
                    RoleColumnName(static_cast<RoleColumn>(c)));
  }
  return absl::PermissionDeniedError(
      absl::StrCat(method, " is open to these roles only: ", allowed.empty() ? "none" : allowed));
}

absl::Status CheckRpcOnRequest(const CallContext& call, const RequestParties& parties,
                               absl::string_view request_id, AccessKind kind,
                               absl::string_view not_found_message) {
  RETURN_IF_ERROR(CheckRpcRoles(call.caller, call.method));
  const RpcRoleRule& rule = *FindRpcRule(call.method);
  std::vector<Grant> grants;
  for (RoleColumn c : ColumnsOf(call.caller)) {
    const Grant g = GrantOf(rule, c);
    if (g == Grant::kAll) return absl::OkStatus();
    if (g != Grant::kNo) grants.push_back(g);
  }
  RETURN_IF_ERROR(MayAccess(call.caller, parties, request_id, kind, not_found_message));
  for (Grant g : grants) {
    switch (g) {
      case Grant::kReach:
      case Grant::kOwn:
        return absl::OkStatus();
      case Grant::kIssuingSide:
        if (OnIssuingSide(call.caller, parties)) return absl::OkStatus();
        break;
      case Grant::kExecutingSide:
        if (OnExecutingSide(call.caller, parties)) return absl::OkStatus();
        break;
      case Grant::kEitherSide:
        if (OnIssuingSide(call.caller, parties) || OnExecutingSide(call.caller, parties)) {
          return absl::OkStatus();
        }
        break;
      default:
        break;
    }
  }
  return absl::PermissionDeniedError(SideDenial(rule, grants));
}

}  // namespace rogatory::common
