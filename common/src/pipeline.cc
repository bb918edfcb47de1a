#include "rogatory/common/pipeline.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/logging.h"

namespace rogatory::common {
namespace {

std::string Metadata(const grpc::ServerContextBase& context, absl::string_view key) {
  const auto& md = context.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

bool IsHex(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

// Accepts x-rogatory-trace-id (32 lower-case hex) or a W3C traceparent header.
std::string TraceIdOf(const grpc::ServerContextBase& context) {
  std::string id = Metadata(context, "x-rogatory-trace-id");
  if (id.size() == 32 && IsHex(id)) return id;
  std::string parent = Metadata(context, "traceparent");
  std::vector<std::string> parts = absl::StrSplit(parent, '-');
  if (parts.size() == 4 && parts[1].size() == 32 && IsHex(parts[1])) return parts[1];
  return NewTraceId();
}

bool ValidAuthorityId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
           c == ':' || c == '-';
  });
}

}  // namespace

bool Caller::HasRole(absl::string_view role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

absl::StatusOr<Caller> MetadataAuthenticator::Authenticate(
    const grpc::ServerContextBase& context) {
  Caller caller;
  caller.authority_id = Metadata(context, "x-rogatory-authority");
  if (caller.authority_id.empty()) {
    return absl::UnauthenticatedError(
        "no caller: set the x-rogatory-authority metadata (development authentication)");
  }
  if (!ValidAuthorityId(caller.authority_id)) {
    return absl::UnauthenticatedError(
        "x-rogatory-authority must be 1 to 128 characters of [A-Za-z0-9._:-]");
  }
  caller.state = Metadata(context, "x-rogatory-state");
  std::string roles = Metadata(context, "x-rogatory-roles");
  for (absl::string_view r : absl::StrSplit(roles, ',', absl::SkipWhitespace())) {
    caller.roles.emplace_back(absl::StripAsciiWhitespace(r));
  }
  caller.is_service = caller.HasRole("service");
  return caller;
}

void LogAuditor::Record(const AuditRecord& r) {
  Log::Info("audit", {{"method", r.method},
                      {"caller", r.caller_authority},
                      {"code", absl::StatusCodeToString(r.code)},
                      {"trace_id", r.trace_id},
                      {"duration_ms", absl::ToDoubleMilliseconds(r.duration)}});
}

absl::StatusOr<CallContext> Pipeline::Admit(const grpc::CallbackServerContext& context,
                                             absl::string_view method) {
  CallContext call;
  call.method = std::string(method);
  call.trace_id = TraceIdOf(context);
  auto caller = authenticator_.Authenticate(context);
  if (!caller.ok()) return caller.status();
  call.caller = *std::move(caller);
  if (absl::Status s = limiter_.Admit(call.caller, call.method); !s.ok()) return s;
  return call;
}

void Pipeline::Audit(const CallContext& call, const absl::Status& status,
                     std::chrono::steady_clock::time_point start) {
  auditor_.Record({call.method, call.caller.authority_id, call.trace_id, status.code(),
                   absl::FromChrono(std::chrono::steady_clock::now() - start)});
}

grpc::ServerUnaryReactor* NotYetImplemented(grpc::CallbackServerContext* context,
                                            absl::string_view method) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                               absl::StrCat(method, " is not implemented yet")));
  return reactor;
}

}  // namespace rogatory::common
