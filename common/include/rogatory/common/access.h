#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/redis.h"
#include "rogatory/common/v1/events.pb.h"

namespace rogatory::common {

// Need-to-know access (issue 8, point 3): the ONE policy every service applies to what a
// caller may see and change of a request.
//
// - An authority (role issuing, central or executing) reaches the requests it issued and
//   those addressed to it (the executing / competent authority, set by the routing
//   decision). With role central it also reaches the requests whose issuing state or
//   requested state is the caller's state. It reads and changes what it reaches (which
//   moves it may make is the service's business, see intake's lifecycle).
// - The notified authority of a request (routing's notified_authority: a production order's
//   enforcing authority, Reg. 2023/1543 Art 8) reads it, with the executing side's read
//   rights, and changes nothing through this policy (PERMISSION_DENIED); its one move, the
//   objection, is intake's to allow (IsNotifiedAuthority).
// - An auditor reads every request and changes none (PERMISSION_DENIED).
// - An operator runs admin RPCs (test clock, dead letters, retries) and reads no request
//   content: requests are outside its reach.
// - A translator reaches only the translation jobs it holds and their documents (see
//   CheckTranslatorAccess); requests themselves are outside its reach.
// - Rogatory services (caller.is_service) reach everything.
//
// A request outside the caller's reach answers NOT_FOUND with the very message a missing
// request gets, so that its existence does not leak. Every check that lets a call through
// notes the request on the call's audit trail (CallContext::Touch).

// Who a request concerns. Authority ids and states are not personal data.
struct RequestParties {
  std::string issuing_authority_id;
  std::string issuing_state;
  std::string executing_authority_id;  // empty until routing decided
  std::string requested_state;
  // Told of the request without executing it (routing's notified_authority: a production
  // order's enforcing authority, Reg. 2023/1543 Art 8); empty if none. It reads the request
  // (Reach::kRead, the executing side's read rights) and changes nothing through the common
  // policy: the one move it may make (an objection) is the service's to allow, see
  // IsNotifiedAuthority.
  std::string notified_authority_id;
};

// The parties named by the facts every intake event carries.
RequestParties PartiesOf(const v1::RequestFacts& facts);

// Roles, as named in Caller::roles.
inline constexpr absl::string_view kRoleIssuing = "issuing";
inline constexpr absl::string_view kRoleCentral = "central";
inline constexpr absl::string_view kRoleExecuting = "executing";
inline constexpr absl::string_view kRoleTranslator = "translator";
inline constexpr absl::string_view kRoleAuditor = "auditor";
inline constexpr absl::string_view kRoleOperator = "operator";

// How far a caller reaches one request.
enum class Reach {
  kNone,  // outside the caller's reach: NOT_FOUND
  kRead,  // may read (auditor)
  kFull,  // may read and change
};
Reach ReachOf(const Caller& caller, const RequestParties& parties);

// The NOT_FOUND every service answers for a request it does not hold or the caller may not
// reach. `message` overrides the standard "no request with id <id>" for services whose
// own not-found message differs (it must then be the very message of a missing record).
absl::Status RequestNotFound(absl::string_view request_id, absl::string_view message = "");

// CheckRequestAccess without noting anything on the audit trail: for checks that run
// before the outcome is known (a change that may still be retried); the caller then
// Touches the request itself once the call succeeded.
absl::Status MayAccess(const Caller& caller, const RequestParties& parties,
                       absl::string_view request_id, AccessKind kind,
                       absl::string_view not_found_message = "");

// Whether the caller acts for the executing side of the request (its executing authority,
// the central authority of the requested state, or a service) or for the issuing side (its
// issuing authority, the central authority of the issuing state, or a service). Services
// decide with these which moves a caller may make among those ReachOf lets it make.
bool OnExecutingSide(const Caller& caller, const RequestParties& parties);
bool OnIssuingSide(const Caller& caller, const RequestParties& parties);
// Whether the caller is an authority acting as the request's notified authority.
bool IsNotifiedAuthority(const Caller& caller, const RequestParties& parties);

// OK (and `call.Touch(request_id, kind, detail)`) when the caller may do `kind` to the
// request; NOT_FOUND (RequestNotFound(request_id, not_found_message)) when the request is
// outside its reach; PERMISSION_DENIED when it reaches the request but may not change it.
// kRead and kDisclose need Reach::kRead, kChange needs Reach::kFull.
absl::Status CheckRequestAccess(const CallContext& call, const RequestParties& parties,
                                const std::string& request_id, AccessKind kind,
                                absl::string_view detail = "",
                                absl::string_view not_found_message = "");

// A caller acting only as a translator: role translator and no role that reaches requests
// on its own account (issuing, central, executing, auditor, operator, service).
bool IsTranslatorOnly(const Caller& caller);

// For what a translator reaches through a job: OK and Touch when `holder` (the translator
// holding the job, empty if none) is the caller, or when CheckRequestAccess lets the
// caller through on its own account; else NOT_FOUND with `not_found_message`.
absl::Status CheckTranslatorAccess(const CallContext& call, const RequestParties& parties,
                                   absl::string_view holder, const std::string& request_id,
                                   AccessKind kind, absl::string_view detail,
                                   absl::string_view not_found_message);

// Which requests a caller may list.
struct ListScope {
  bool all = false;           // auditor or service: every request
  std::string authority_id;   // else: those this authority issued or that are addressed to it
  std::string central_state;  // and, for a central authority, those of its state
};
// PERMISSION_DENIED for callers who may list no requests (operators, translators).
absl::StatusOr<ListScope> ListScopeOf(const Caller& caller);
// Whether a request with these parties is in the scope (same rule as ReachOf).
bool InScope(const ListScope& scope, const RequestParties& parties);

// Reads the parties of a request that a service keeps in the Redis hash `key` (written by
// its event receiver scripts, fields ia = issuing authority, is = issuing state,
// ea = executing authority, rs = requested state, na = notified authority): nullopt when
// the service has not heard of the request yet.
void LoadRequestParties(RedisClient& redis, std::string key,
                        std::function<void(absl::StatusOr<std::optional<RequestParties>>)> done);

// Admin RPCs (test clock, dead letters, redrives): operators and services only;
// PERMISSION_DENIED for everyone else.
absl::Status CheckAdmin(const Caller& caller, absl::string_view what);

}  // namespace rogatory::common
