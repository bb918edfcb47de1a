#include "rogatory/common/access.h"

#include "absl/strings/str_cat.h"

namespace rogatory::common {
namespace {

bool IsAuthority(const Caller& caller) {
  return caller.HasRole(kRoleIssuing) || caller.HasRole(kRoleCentral) ||
         caller.HasRole(kRoleExecuting);
}

bool Reaches(const std::string& authority_id, const std::string& central_state,
             const RequestParties& p) {
  if (!authority_id.empty() &&
      (authority_id == p.issuing_authority_id || authority_id == p.executing_authority_id)) {
    return true;
  }
  return !central_state.empty() &&
         (central_state == p.issuing_state || central_state == p.requested_state);
}

}  // namespace

RequestParties PartiesOf(const v1::RequestFacts& facts) {
  RequestParties p;
  p.issuing_authority_id = facts.issuing_authority().authority_id();
  p.issuing_state = facts.issuing_authority().state();
  p.executing_authority_id = facts.executing_authority().authority_id();
  p.requested_state = facts.requested_state();
  p.notified_authority_id = facts.notified_authority().authority_id();
  return p;
}

Reach ReachOf(const Caller& caller, const RequestParties& parties) {
  if (caller.is_service) return Reach::kFull;
  if (IsAuthority(caller) &&
      Reaches(caller.authority_id, caller.HasRole(kRoleCentral) ? caller.state : "", parties)) {
    return Reach::kFull;
  }
  if (IsNotifiedAuthority(caller, parties)) return Reach::kRead;
  if (caller.HasRole(kRoleAuditor)) return Reach::kRead;
  return Reach::kNone;
}

absl::Status RequestNotFound(absl::string_view request_id, absl::string_view message) {
  if (!message.empty()) return absl::NotFoundError(message);
  return absl::NotFoundError(absl::StrCat("no request with id ", request_id));
}

absl::Status MayAccess(const Caller& caller, const RequestParties& parties,
                       absl::string_view request_id, AccessKind kind,
                       absl::string_view not_found_message) {
  const Reach reach = ReachOf(caller, parties);
  if (reach == Reach::kNone) return RequestNotFound(request_id, not_found_message);
  if (kind == AccessKind::kChange && reach != Reach::kFull) {
    if (IsNotifiedAuthority(caller, parties)) {
      return absl::PermissionDeniedError(
          "the notified authority reads this request but does not move it (it may object)");
    }
    return absl::PermissionDeniedError("an auditor reads requests but changes none");
  }
  return absl::OkStatus();
}

bool OnExecutingSide(const Caller& caller, const RequestParties& p) {
  if (caller.is_service) return true;
  if (!IsAuthority(caller)) return false;
  return (!p.executing_authority_id.empty() && caller.authority_id == p.executing_authority_id) ||
         (caller.HasRole(kRoleCentral) && !caller.state.empty() &&
          caller.state == p.requested_state);
}

bool OnIssuingSide(const Caller& caller, const RequestParties& p) {
  if (caller.is_service) return true;
  if (!IsAuthority(caller)) return false;
  return (!caller.authority_id.empty() && caller.authority_id == p.issuing_authority_id) ||
         (caller.HasRole(kRoleCentral) && !caller.state.empty() && caller.state == p.issuing_state);
}

bool IsNotifiedAuthority(const Caller& caller, const RequestParties& p) {
  return IsAuthority(caller) && !caller.authority_id.empty() &&
         caller.authority_id == p.notified_authority_id;
}

absl::Status CheckRequestAccess(const CallContext& call, const RequestParties& parties,
                                const std::string& request_id, AccessKind kind,
                                absl::string_view detail, absl::string_view not_found_message) {
  RETURN_IF_ERROR(MayAccess(call.caller, parties, request_id, kind, not_found_message));
  call.Touch(request_id, kind, std::string(detail));
  return absl::OkStatus();
}

bool IsTranslatorOnly(const Caller& caller) {
  if (!caller.HasRole(kRoleTranslator) || caller.is_service) return false;
  for (absl::string_view role :
       {kRoleIssuing, kRoleCentral, kRoleExecuting, kRoleAuditor, kRoleOperator}) {
    if (caller.HasRole(role)) return false;
  }
  return true;
}

absl::Status CheckTranslatorAccess(const CallContext& call, const RequestParties& parties,
                                   absl::string_view holder, const std::string& request_id,
                                   AccessKind kind, absl::string_view detail,
                                   absl::string_view not_found_message) {
  if (call.caller.HasRole(kRoleTranslator) && !holder.empty() &&
      holder == call.caller.authority_id) {
    call.Touch(request_id, kind, std::string(detail));
    return absl::OkStatus();
  }
  return CheckRequestAccess(call, parties, request_id, kind, detail, not_found_message);
}

absl::StatusOr<ListScope> ListScopeOf(const Caller& caller) {
  ListScope scope;
  if (caller.is_service || caller.HasRole(kRoleAuditor)) {
    scope.all = true;
    return scope;
  }
  if (!IsAuthority(caller) || caller.authority_id.empty()) {
    return absl::PermissionDeniedError(
        "only authorities, auditors and Rogatory services list requests");
  }
  scope.authority_id = caller.authority_id;
  if (caller.HasRole(kRoleCentral)) scope.central_state = caller.state;
  return scope;
}

bool InScope(const ListScope& scope, const RequestParties& parties) {
  return scope.all || Reaches(scope.authority_id, scope.central_state, parties) ||
         (!scope.authority_id.empty() && scope.authority_id == parties.notified_authority_id);
}

void LoadRequestParties(RedisClient& redis, std::string key,
                        std::function<void(absl::StatusOr<std::optional<RequestParties>>)> done) {
  redis.Command({"HMGET", std::move(key), "ia", "is", "ea", "rs", "na"},
                [done = std::move(done)](absl::StatusOr<RedisReply> r) {
                  if (!r.ok()) return done(r.status());
                  if (r->elements.size() != 5) {
                    return done(absl::InternalError("unexpected parties reply"));
                  }
                  bool any = false;
                  for (const auto& e : r->elements) any = any || !e.is_nil();
                  if (!any) return done(std::optional<RequestParties>());
                  RequestParties p;
                  p.issuing_authority_id = r->elements[0].str;
                  p.issuing_state = r->elements[1].str;
                  p.executing_authority_id = r->elements[2].str;
                  p.requested_state = r->elements[3].str;
                  p.notified_authority_id = r->elements[4].str;
                  done(std::optional<RequestParties>(std::move(p)));
                });
}

absl::Status CheckAdmin(const Caller& caller, absl::string_view what) {
  if (caller.is_service || caller.HasRole(kRoleOperator)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("only operators may ", what));
}

}  // namespace rogatory::common
