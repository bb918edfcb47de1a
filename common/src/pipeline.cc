#include "rogatory/common/pipeline.h"

#include <algorithm>
#include <array>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "rogatory/common/denial_log.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/malformed_requests.h"
#include "rogatory/common/rpc_roles.h"

namespace rogatory::common {
namespace {

std::string Metadata(const grpc::ServerContextBase& context, absl::string_view key) {
  const auto& md = context.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

bool IsHex(absl::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
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
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
           c == '-';
  });
}

// The id a request names in the field the role table gives for `method`, if it looks like
// an id (DenialTargetId).
std::string TargetOf(absl::string_view method, const google::protobuf::Message* request) {
  if (request == nullptr) return "";
  const RpcRoleRule* rule = FindRpcRule(method);
  if (rule == nullptr || rule->target_field.empty()) return "";
  const google::protobuf::FieldDescriptor* field =
      request->GetDescriptor()->FindFieldByName(std::string(rule->target_field));
  if (field == nullptr || field->is_repeated() ||
      field->type() != google::protobuf::FieldDescriptor::TYPE_STRING) {
    return "";
  }
  return DenialTargetId(request->GetReflection()->GetString(*request, field));
}

}  // namespace

// The calls in flight: in all, and per caller authority and kind. An authority's entry
// exists only while it has a call in flight, so the map is bounded by the calls in flight.
struct Pipeline::Slots {
  static constexpr int kKinds = 2;
  mutable absl::Mutex mu;
  int total ABSL_GUARDED_BY(mu) = 0;
  absl::flat_hash_map<std::string, std::array<int, kKinds>> per_caller ABSL_GUARDED_BY(mu);
  // Null until SetMetrics.
  std::array<prometheus::Gauge*, kKinds> in_flight{};
  // [kind][0: server bound, 1: caller bound]
  std::array<std::array<prometheus::Counter*, 2>, kKinds> refused{};

  void Release(const std::string& authority_id, int kind) {
    {
      absl::MutexLock lock(&mu);
      --total;
      if (!authority_id.empty()) {
        auto it = per_caller.find(authority_id);
        if (it != per_caller.end() && --it->second[kind] == 0 && it->second[1 - kind] == 0) {
          per_caller.erase(it);
        }
      }
    }
    if (in_flight[kind] != nullptr) in_flight[kind]->Decrement();
  }
};

Pipeline::Pipeline(Authenticator& authenticator, RateLimiter& limiter, Auditor& auditor,
                   const Clock& clock)
    : authenticator_(authenticator),
      limiter_(limiter),
      auditor_(auditor),
      clock_(clock),
      slots_(std::make_shared<Slots>()) {}

void Pipeline::SetMetrics(prometheus::Registry& registry) {
  auto& gauge = prometheus::BuildGauge()
                    .Name("rogatory_calls_in_flight")
                    .Help("Calls admitted and not yet answered, by kind (unary, stream).")
                    .Register(registry);
  auto& counter = prometheus::BuildCounter()
                      .Name("rogatory_calls_refused_total")
                      .Help(
                          "Calls refused with RESOURCE_EXHAUSTED because a bound of calls "
                          "in flight was reached, by kind (unary, stream) and bound (server: "
                          "max-concurrent-rpcs; caller: max-calls-per-caller or "
                          "max-streams-per-caller).")
                      .Register(registry);
  const char* kinds[] = {"unary", "stream"};
  for (int k = 0; k < Slots::kKinds; ++k) {
    slots_->in_flight[k] = &gauge.Add({{"kind", kinds[k]}});
    slots_->refused[k][0] = &counter.Add({{"kind", kinds[k]}, {"bound", "server"}});
    slots_->refused[k][1] = &counter.Add({{"kind", kinds[k]}, {"bound", "caller"}});
  }
}

int Pipeline::calls_in_flight() const {
  absl::MutexLock lock(&slots_->mu);
  return slots_->total;
}

int Pipeline::calls_in_flight(absl::string_view authority_id, CallKind kind) const {
  absl::MutexLock lock(&slots_->mu);
  auto it = slots_->per_caller.find(authority_id);
  return it == slots_->per_caller.end() ? 0 : it->second[static_cast<int>(kind)];
}

absl::StatusOr<std::shared_ptr<const void>> Pipeline::TakeSlot(const Caller& caller,
                                                               CallKind kind) {
  const int k = static_cast<int>(kind);
  const bool stream = kind == CallKind::kStream;
  // Services are bounded by the server's bound only: the relay's deliveries, for one, must
  // not queue behind a caller's cap.
  const int caller_bound =
      caller.is_service ? 0 : (stream ? max_streams_per_caller_ : max_calls_per_caller_);
  std::string counted = caller_bound > 0 ? caller.authority_id : "";
  int refused_by = -1;  // 0: the server's bound, 1: the caller's
  {
    absl::MutexLock lock(&slots_->mu);
    if (max_concurrent_calls_ > 0 && slots_->total >= max_concurrent_calls_) {
      refused_by = 0;
    } else if (caller_bound > 0) {
      auto& held = slots_->per_caller[counted];
      if (held[k] >= caller_bound) {
        refused_by = 1;
        if (held[0] == 0 && held[1] == 0) slots_->per_caller.erase(counted);
      } else {
        ++held[k];
      }
    }
    if (refused_by < 0) ++slots_->total;
  }
  if (refused_by >= 0) {
    if (slots_->refused[k][refused_by] != nullptr) slots_->refused[k][refused_by]->Increment();
    absl::Status status =
        refused_by == 0
            ? absl::ResourceExhaustedError(
                  "this server is at its bound of concurrent calls; retry later")
            : absl::ResourceExhaustedError(absl::StrCat(
                  "this caller already has ", caller_bound,
                  stream ? " streams open on this server, its bound (max-streams-per-caller)"
                         : " calls in flight on this server, its bound "
                           "(max-calls-per-caller)",
                  "; finish one first or retry later"));
    NoteRefusal(refused_by == 0 ? "server_bound" : "caller_bound", status);
    return status;
  }
  if (slots_->in_flight[k] != nullptr) slots_->in_flight[k]->Increment();
  return std::shared_ptr<const void>(nullptr, [slots = slots_, counted = std::move(counted),
                                               k](const void*) { slots->Release(counted, k); });
}

bool Caller::HasRole(absl::string_view role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

absl::StatusOr<Caller> MetadataAuthenticator::Authenticate(const grpc::ServerContextBase& context) {
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

absl::string_view AccessKindName(AccessKind kind) {
  switch (kind) {
    case AccessKind::kRead:
      return "read";
    case AccessKind::kChange:
      return "change";
    case AccessKind::kDisclose:
      return "disclose";
  }
  return "unknown";
}

void AuditTrail::Touch(std::string request_id, AccessKind kind, std::string detail) {
  absl::MutexLock lock(&mu_);
  subjects_.push_back({std::move(request_id), kind, std::move(detail)});
}

void AuditTrail::TouchRecorded(std::string request_id, AccessKind kind, std::string detail) {
  absl::MutexLock lock(&mu_);
  subjects_.push_back({std::move(request_id), kind, std::move(detail), /*recorded=*/true});
}

std::vector<AuditSubject> AuditTrail::subjects() const {
  absl::MutexLock lock(&mu_);
  return subjects_;
}

void LogAuditor::Record(AuditRecord r, std::function<void(absl::Status)> done) {
  std::vector<std::string> touched;
  for (const AuditSubject& s : r.subjects) {
    touched.push_back(absl::StrCat(AccessKindName(s.kind), ":", s.request_id));
  }
  Log::Info("audit", {{"method", r.method},
                      {"caller", r.caller.authority_id},
                      {"code", absl::StatusCodeToString(r.code)},
                      {"trace_id", r.trace_id},
                      {"touched", absl::StrJoin(touched, ",")},
                      {"duration_ms", absl::ToDoubleMilliseconds(r.duration)}});
  done(absl::OkStatus());
}

absl::StatusOr<CallContext> Pipeline::Admit(const grpc::CallbackServerContext& context,
                                            absl::string_view method,
                                            const google::protobuf::Message* request,
                                            CallKind kind) {
  CallContext call;
  call.method = std::string(method);
  call.target_id = TargetOf(method, request);
  call.trace_id = TraceIdOf(context);
  call.justification = Metadata(context, "x-rogatory-justification").substr(0, 512);
  // Taken first, so that the mark of bytes that did not parse never outlives the call
  // (see malformed_requests.h), but answered only once the caller is known.
  absl::Status malformed = internal::MalformedRequestStatus(context);
  auto caller = authenticator_.Authenticate(context);
  if (!caller.ok()) {
    NoteRefusal("unauthenticated", caller.status());
    return caller.status();
  }
  call.caller = *std::move(caller);
  auto slot = TakeSlot(call.caller, kind);
  if (!slot.ok()) return slot.status();
  call.slot = *std::move(slot);
  if (absl::Status s = limiter_.Admit(call.caller, call.method); !s.ok()) return s;
  // Bytes that did not parse as the request message (see malformed_requests.h).
  if (!malformed.ok()) {
    NoteRefusal("unparsable", malformed);
    return malformed;
  }
  // The role table (rpc_roles.h): said before anything about what the call names is looked
  // at, so the refusal tells nothing about it. Recorded without waiting: the answer does
  // not depend on any id.
  if (role_gate_) {
    if (absl::Status s = CheckRpcRoles(call.caller, call.method); !s.ok()) {
      NoteDenial(call, s.code(), [] {});
      return s;
    }
  }
  return call;
}

void Pipeline::NoteDenial(const CallContext& call, absl::StatusCode code,
                          std::function<void()> then) {
  if (denial_log_ == nullptr || !IsDenial(code)) return then();
  DenialRecord record;
  record.method = call.method;
  record.code = code;
  record.target_id = call.target_id;
  record.caller = call.caller;
  record.trace_id = call.trace_id;
  denial_log_->Record(std::move(record), [this, then = std::move(then)](absl::Status written) {
    // The call keeps its own answer. Callers can cause denials at will, so a Redis that
    // refuses writes is reported in the rate-limited summary, not a line per call.
    if (!written.ok()) {
      if (refusal_log_ != nullptr) {
        NoteRefusal("denial-log-unwritten", written);
      } else {
        Log::Warn("a denial could not be written to the denial log",
                  {{"code", absl::StatusCodeToString(written.code())}});
      }
    }
    then();
  });
}

void Pipeline::NoteRefusal(absl::string_view kind, const absl::Status& status) {
  if (refusal_log_ == nullptr) return;
  const int64_t count = refusal_log_->Note(kind);
  if (count == 0) return;
  // The reason is the service's own message (which check failed), never caller data.
  Log::Warn("calls refused before their handler (summary)",
            {{"kind", kind},
             {"count", count},
             {"interval_s", absl::ToInt64Seconds(refusal_log_->interval())},
             {"last_code", absl::StatusCodeToString(status.code())},
             {"last_reason", std::string(status.message()).substr(0, 200)}});
}

void Pipeline::Audit(const CallContext& call, const absl::Status& status, MonotonicTime start,
                     Done answer) {
  AuditRecord record{call.method,           call.caller,   call.trace_id,
                     call.justification,    status.code(), clock_.MonotonicNow() - start,
                     call.trail->subjects()};
  auditor_.Record(
      std::move(record), [this, call, status, answer = std::move(answer)](absl::Status logged) {
        if (!logged.ok() && status.ok()) {
          return answer(absl::UnavailableError("the audit log cannot be written; retry later"));
        }
        // A denial is answered once written, whichever check refused it and whether or not
        // what the call named exists: one path for every PERMISSION_DENIED and NOT_FOUND.
        NoteDenial(call, status.code(), [status, answer] { answer(status); });
      });
}

}  // namespace rogatory::common
