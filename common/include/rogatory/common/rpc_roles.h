#pragma once

#include <array>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "rogatory/common/access.h"
#include "rogatory/common/pipeline.h"

namespace rogatory::common {

// Who may call each RPC (issue 16, item 6): ONE table, as data, for every RPC that the
// pipeline serves in every service (intake, routing, deadlines, notification, the event
// sink and the admin services). Two checks read it:
//
// 1. CheckRpcRoles, run by the pipeline for every call once the caller is known (see
//    Pipeline::SetRoleGate): a caller none of whose columns has anything but kNo for the
//    method gets PERMISSION_DENIED before anything about the request is looked at, so the
//    answer says nothing about whether what it named exists. An RPC missing from the table
//    is refused the same way (fail closed).
// 2. CheckRpcOnRequest, which a service calls once it knows the parties of the request a
//    call is about: NOT_FOUND outside the caller's reach (the very answer of a missing
//    request), PERMISSION_DENIED when the caller reaches the request but acts for no side
//    its cells let it act for.
//
// The top-level README's role table is rendered from this table
// (tools/docs/rpc_roles_table.py checks that the two agree).

// The columns of the table. A caller's columns: one per role it holds (issuing, central,
// executing, translator, auditor, operator), kService for a Rogatory service, and kNoRole
// for a caller holding none of these roles.
enum class RoleColumn : int {
  kIssuing = 0,
  kCentral,
  kExecuting,
  kTranslator,
  kAuditor,
  kOperator,
  kService,
  kNoRole,
};
inline constexpr int kRoleColumnCount = 8;
absl::string_view RoleColumnName(RoleColumn column);  // "issuing", ..., "service", "no roles"

// What one column may do with one RPC.
enum class Grant : uint8_t {
  kNo,             // PERMISSION_DENIED, whatever the call names
  kAll,            // every call, whatever it names (no reach check)
  kReach,          // the requests in its reach (need-to-know: NOT_FOUND outside)
  kOwn,            // its own things only: its inbox, subscriptions, dead letters, the
                   // translation jobs it holds (the service checks ownership)
  kIssuingSide,    // requests in its reach on which it acts for the issuing side
  kExecutingSide,  // requests in its reach on which it acts for the executing side
  kEitherSide,     // requests in its reach on which it acts for either side (not as
                   // notified authority or auditor)
};
absl::string_view GrantSymbol(Grant grant);  // the README cell: "✓", "reach", "own", ...

struct RpcRoleRule {
  absl::string_view service;  // full name: "rogatory.deadlines.v1.DeadlineService"
  absl::string_view method;   // "CompleteDeadline"
  // One grant per RoleColumn, in its order.
  std::array<Grant, kRoleColumnCount> grants;
  // The request field naming what the call is about (recorded on denials), empty if none.
  absl::string_view target_field;
  // For people: what the cells mean for this RPC, if they need saying.
  absl::string_view note;
};

// The whole table, services in the order the README lists them.
absl::Span<const RpcRoleRule> RpcRoleTable();

// The rule of `method` (a short method name; short names are unique across the table,
// which a test checks); null when it has none.
const RpcRoleRule* FindRpcRule(absl::string_view method);

// The caller's columns: one per role of the table it holds, kService for a Rogatory
// service, kNoRole when it holds none of the table's roles.
std::vector<RoleColumn> ColumnsOf(const Caller& caller);

// Step 1 (the pipeline's gate): OK when some column of the caller is not kNo for
// `method`; PERMISSION_DENIED otherwise, and for a method the table lacks.
absl::Status CheckRpcRoles(const Caller& caller, absl::string_view method);

// Step 2 (the service's check on one request, once its parties are known), for the call's
// method: OK (without noting anything on the trail) when a column of the caller grants
// kAll, or when the caller reaches the request (MayAccess: NOT_FOUND outside its reach,
// with `not_found_message`; PERMISSION_DENIED for an auditor's or notified authority's
// change) and acts for a side one of its grants names (else PERMISSION_DENIED naming the
// side that may).
absl::Status CheckRpcOnRequest(const CallContext& call, const RequestParties& parties,
                               absl::string_view request_id, AccessKind kind,
                               absl::string_view not_found_message = "");

}  // namespace rogatory::common
