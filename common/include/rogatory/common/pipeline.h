#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "prometheus/registry.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/log_summary.h"
#include "rogatory/common/status.h"

namespace google::protobuf {
class Message;
}

namespace rogatory::common {

class DenialLog;

// Who is calling. Authority ids and states are not personal data.
struct Caller {
  std::string authority_id;
  std::string state;               // ISO 3166-1 alpha-2
  std::vector<std::string> roles;  // issuing, central, executing, translator, auditor, operator
  bool is_service = false;         // another Rogatory service
  bool HasRole(absl::string_view role) const;
};

// How a call touched a request, for the audit log (Directive 2016/680 Art 25).
enum class AccessKind {
  kRead,      // consulted
  kChange,    // altered (including creation and erasure)
  kDisclose,  // sent to someone (a notification delivery, a document download)
};
absl::string_view AccessKindName(AccessKind kind);

// One request a call touched. `detail` names what (a document id, a delivery id), never
// personal data.
struct AuditSubject {
  std::string request_id;
  AccessKind kind = AccessKind::kRead;
  std::string detail;
  // Already durable: a store wrote its entry in the same Redis script as the access itself
  // (see Auditor::Prepare); the auditor writes nothing more for it.
  bool recorded = false;
};

// The requests one call touched, filled by handlers (usually through the access checks,
// which note every request they let the caller reach) and read by the auditor when the
// call ends. Thread-safe: Redis callbacks may add to it.
class AuditTrail {
 public:
  void Touch(std::string request_id, AccessKind kind, std::string detail = "");
  // Notes a touch whose audit entry was already written with the access (see
  // Auditor::Prepare).
  void TouchRecorded(std::string request_id, AccessKind kind, std::string detail = "");
  std::vector<AuditSubject> subjects() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<AuditSubject> subjects_ ABSL_GUARDED_BY(mu_);
};

// What every handler knows about its call.
struct CallContext {
  Caller caller;
  std::string method;    // "SubmitRequest"
  std::string trace_id;  // from x-rogatory-trace-id or traceparent metadata, else new
  // Why the caller reads, from x-rogatory-justification metadata (logged with reads).
  std::string justification;
  // The id the call names (the request field the role table names for the method), for the
  // denial log; empty if none or if it did not look like an id.
  std::string target_id;
  // Never null for calls admitted by the pipeline.
  std::shared_ptr<AuditTrail> trail = std::make_shared<AuditTrail>();

  // Notes that this call touched `request_id` (see AuditTrail).
  void Touch(std::string request_id, AccessKind kind, std::string detail = "") const {
    trail->Touch(std::move(request_id), kind, std::move(detail));
  }
  // The call's place among the calls in flight (the server's bound, the caller's bound:
  // see Pipeline::SetMaxConcurrentCalls and SetCallerLimits), held until the last copy of
  // this context goes, i.e. until the call has been audited and answered.
  std::shared_ptr<const void> slot;
};

// Step 1: establishes who is calling. UNAUTHENTICATED when it cannot.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  virtual absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context) = 0;
};

// Step 2: admits or limits the call. RESOURCE_EXHAUSTED when over the limit.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  virtual absl::Status Admit(const Caller& caller, absl::string_view method) = 0;
};

// Step 4: records the outcome of every call (Directive 2016/680 Art 25 logging). Records
// carry the caller, the method, the outcome and the trace id, never request content.
struct AuditRecord {
  std::string method;
  Caller caller;
  std::string trace_id;
  std::string justification;
  absl::StatusCode code = absl::StatusCode::kOk;
  absl::Duration duration;
  std::vector<AuditSubject> subjects;  // the requests the call touched
};
// An audit entry made ready for a store to write in the same Redis script as the access it
// records, so that the access and its entry cost one round trip and are durable together.
struct PreparedAuditEntry {
  std::string pending_key;  // the stream the entry goes to (in the request's shard)
  std::string request_id;
  std::string mac;          // the entry's own HMAC
  std::string entry;        // the encoded entry
  int64_t max_pending = 0;  // write it only while the stream holds fewer entries than this
};

class Auditor {
 public:
  virtual ~Auditor() = default;
  // The entry Record would write for `record`'s one subject, for a store to write itself
  // (then noted on the trail with TouchRecorded). Null when this auditor keeps no entries
  // in Redis: the store then only reads, and the call is recorded as usual.
  virtual std::optional<PreparedAuditEntry> Prepare(const AuditRecord&) { return std::nullopt; }
  // Records `record` and calls `done` once it is durable; the pipeline answers the call
  // only then, and answers UNAVAILABLE instead of disclosing anything unlogged when `done`
  // gets an error.
  virtual void Record(AuditRecord record, std::function<void(absl::Status)> done) = 0;
};

// Development implementations. The caller is named by metadata: x-rogatory-authority
// (required), x-rogatory-state, x-rogatory-roles (comma-separated).
class MetadataAuthenticator final : public Authenticator {
 public:
  absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context) override;
};
class NoRateLimiter final : public RateLimiter {
 public:
  absl::Status Admit(const Caller&, absl::string_view) override { return absl::OkStatus(); }
};
class LogAuditor final : public Auditor {
 public:
  void Record(AuditRecord record, std::function<void(absl::Status)> done) override;
};

// The one path every RPC takes: authenticate, limit, validate, handle, audit. Handlers
// complete asynchronously through `done`, so a handler waiting on Redis holds no thread.
class Pipeline {
 public:
  // `clock` times each call (its monotonic reading) for the audit record.
  Pipeline(Authenticator& authenticator, RateLimiter& limiter, Auditor& auditor,
           const Clock& clock);

  using Done = std::function<void(absl::Status)>;

  // For unary RPCs. `validate` returns INVALID_ARGUMENT listing every bad field (see
  // FieldViolations); `handle` runs only for valid input and calls `done` exactly once.
  template <typename Req, typename Resp>
  grpc::ServerUnaryReactor* Unary(
      grpc::CallbackServerContext* context, absl::string_view method, const Req* request,
      Resp* response, const std::function<absl::Status(const Req&)>& validate,
      const std::function<void(const CallContext&, const Req&, Resp*, Done)>& handle) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    const MonotonicTime start = clock_.MonotonicNow();
    auto call = Admit(*context, method, request);
    if (!call.ok()) {
      reactor->Finish(ToGrpcStatus(call.status()));
      return reactor;
    }
    auto finish = [this, reactor, call = *call, start](absl::Status status) {
      Audit(call, status, start,
            [reactor](absl::Status answer) { reactor->Finish(ToGrpcStatus(answer)); });
    };
    if (validate) {
      if (absl::Status s = validate(*request); !s.ok()) {
        finish(s);
        return reactor;
      }
    }
    handle(*call, *request, response, std::move(finish));
    return reactor;
  }

  // What a call holds while in flight, for the bounds of SetCallerLimits.
  enum class CallKind { kUnary, kStream };

  // Authenticates and limits a call, then (with the role gate on) refuses callers the role
  // table does not let call `method` (PERMISSION_DENIED, written to the denial log with the
  // id `request` names); for streaming handlers, which then call Audit. `request`, if
  // known, names the call's target (see CallContext::target_id). A handler of a streaming
  // RPC (client, server or both) passes kStream: it is then bounded by the caller's stream
  // bound rather than its call bound.
  absl::StatusOr<CallContext> Admit(const grpc::CallbackServerContext& context,
                                    absl::string_view method,
                                    const google::protobuf::Message* request = nullptr,
                                    CallKind kind = CallKind::kUnary);
  // Records the call's outcome (and, for PERMISSION_DENIED and NOT_FOUND, its denial, the
  // same way whatever the handler found), then calls `answer` with the status to answer
  // with: the call's own, or UNAVAILABLE when a successful call could not be logged.
  // `start`: clock().MonotonicNow() when the call arrived.
  void Audit(const CallContext& call, const absl::Status& status, MonotonicTime start, Done answer);

  // Bounds the calls admitted and not yet finished (unary and streaming alike); beyond it
  // Admit answers RESOURCE_EXHAUSTED at once instead of letting calls queue without end.
  // 0: no bound. Set before serving.
  void SetMaxConcurrentCalls(int max_calls) { max_concurrent_calls_ = max_calls; }
  // Bounds, per caller authority, the unary calls and the streams admitted and not yet
  // finished, so that one caller cannot take the server's whole bound (idle uploads and
  // streams): beyond them Admit answers RESOURCE_EXHAUSTED. Other Rogatory services
  // (Caller::is_service) are bounded by the server's bound only. 0: no bound. Set before
  // serving.
  void SetCallerLimits(int max_calls_per_caller, int max_streams_per_caller) {
    max_calls_per_caller_ = max_calls_per_caller;
    max_streams_per_caller_ = max_streams_per_caller;
  }
  // Exports rogatory_calls_in_flight{kind} and rogatory_calls_refused_total{kind,bound}
  // (kind: unary | stream; bound: server | caller) into `registry`, which must outlive
  // every call. Labels never name a caller. Set before serving.
  void SetMetrics(prometheus::Registry& registry);
  int calls_in_flight() const;
  // Calls of `kind` that `authority_id` has in flight.
  int calls_in_flight(absl::string_view authority_id, CallKind kind) const;
  // Checks every call against the role table (rpc_roles.h, CheckRpcRoles) once the caller
  // is known. Off by default (tests of single handlers); the platform turns it on. Set
  // before serving.
  void SetRoleGate(bool on) { role_gate_ = on; }
  // Where calls answered PERMISSION_DENIED or NOT_FOUND are recorded (denial_log.h). Not
  // owned; outlives the pipeline. Null (the default): not recorded. Set before serving.
  void SetDenialLog(DenialLog* log) { denial_log_ = log; }
  Auditor& auditor() { return auditor_; }
  const Clock& clock() const { return clock_; }

  // Where calls refused before they reach a handler, which callers can send at will
  // (unauthenticated, or bytes that do not parse), are reported: a rate-limited summary
  // line per kind instead of a line each (see LogSummary). Not owned; outlives the
  // pipeline. Null (the default): not logged. Set before serving.
  void SetRefusalLog(LogSummary* summary) { refusal_log_ = summary; }

 private:
  void NoteRefusal(absl::string_view kind, const absl::Status& status);
  // Writes a denial of `call` answered `code` to the denial log (if any), then `then`.
  void NoteDenial(const CallContext& call, absl::StatusCode code, std::function<void()> then);

  Authenticator& authenticator_;
  RateLimiter& limiter_;
  Auditor& auditor_;
  const Clock& clock_;
  // Takes a place for `caller`'s call of `kind` (see CallContext::slot).
  absl::StatusOr<std::shared_ptr<const void>> TakeSlot(const Caller& caller, CallKind kind);

  int max_concurrent_calls_ = 0;
  int max_calls_per_caller_ = 0;
  int max_streams_per_caller_ = 0;
  LogSummary* refusal_log_ = nullptr;
  struct Slots;
  // Shared with the slots, which may outlive the pipeline.
  std::shared_ptr<Slots> slots_;
  bool role_gate_ = false;
  DenialLog* denial_log_ = nullptr;
};

}  // namespace rogatory::common
