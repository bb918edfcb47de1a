#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "rogatory/common/status.h"

namespace rogatory::common {

// Who is calling. Authority ids and states are not personal data.
struct Caller {
  std::string authority_id;
  std::string state;          // ISO 3166-1 alpha-2
  std::vector<std::string> roles;  // issuing, central, executing, translator, auditor, operator
  bool is_service = false;    // another Rogatory service
  bool HasRole(absl::string_view role) const;
};

// What every handler knows about its call.
struct CallContext {
  Caller caller;
  std::string method;    // "SubmitRequest"
  std::string trace_id;  // from x-rogatory-trace-id or traceparent metadata, else new
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
  std::string caller_authority;
  std::string trace_id;
  absl::StatusCode code = absl::StatusCode::kOk;
  absl::Duration duration;
};
class Auditor {
 public:
  virtual ~Auditor() = default;
  virtual void Record(const AuditRecord& record) = 0;
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
  void Record(const AuditRecord& record) override;
};

// The one path every RPC takes: authenticate, limit, validate, handle, audit. Handlers
// complete asynchronously through `done`, so a handler waiting on Redis holds no thread.
class Pipeline {
 public:
  Pipeline(Authenticator& authenticator, RateLimiter& limiter, Auditor& auditor)
      : authenticator_(authenticator), limiter_(limiter), auditor_(auditor) {}

  using Done = std::function<void(absl::Status)>;

  // For unary RPCs. `validate` returns INVALID_ARGUMENT listing every bad field (see
  // FieldViolations); `handle` runs only for valid input and calls `done` exactly once.
  template <typename Req, typename Resp>
  grpc::ServerUnaryReactor* Unary(
      grpc::CallbackServerContext* context, absl::string_view method, const Req* request,
      Resp* response,
      const std::function<absl::Status(const Req&)>& validate,
      const std::function<void(const CallContext&, const Req&, Resp*, Done)>& handle) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    const auto start = std::chrono::steady_clock::now();
    auto call = Admit(*context, method);
    if (!call.ok()) {
      reactor->Finish(ToGrpcStatus(call.status()));
      return reactor;
    }
    auto finish = [this, reactor, call = *call, start](absl::Status status) {
      Audit(call, status, start);
      reactor->Finish(ToGrpcStatus(status));
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

  // Authenticates and limits a call; for streaming handlers, which then call Audit.
  absl::StatusOr<CallContext> Admit(const grpc::CallbackServerContext& context,
                                    absl::string_view method);
  void Audit(const CallContext& call, const absl::Status& status,
             std::chrono::steady_clock::time_point start);

 private:
  Authenticator& authenticator_;
  RateLimiter& limiter_;
  Auditor& auditor_;
};

// A unary reactor answering UNIMPLEMENTED, for RPCs whose issue has not landed yet.
grpc::ServerUnaryReactor* NotYetImplemented(grpc::CallbackServerContext* context,
                                            absl::string_view method);

}  // namespace rogatory::common
