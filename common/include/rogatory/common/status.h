#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/rpc/error_details.pb.h"
#include "grpcpp/support/status.h"
#include "rogatory/common/v1/errors.pb.h"

// Error handling below the gRPC handlers: absl::Status with canonical codes. One place,
// ToGrpcStatus, maps them to grpc::Status with google.rpc details.

#define ROGATORY_CONCAT_INNER_(a, b) a##b
#define ROGATORY_CONCAT_(a, b) ROGATORY_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                                                                    \
  do {                                                                                           \
    if (absl::Status rogatory_status_ = (expr); !rogatory_status_.ok()) return rogatory_status_; \
  } while (false)

// `ASSIGN_OR_RETURN(auto x, StatusOrExpr());`
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(ROGATORY_CONCAT_(rogatory_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)   \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()

namespace rogatory::common {

// One bad field of a request: a path such as `content.subjects[2].family_name` and why.
struct FieldViolation {
  std::string field;
  std::string description;
};

// Collects every bad field of a request so the caller hears about all of them at once.
class FieldViolations {
 public:
  // Keeps the first kMaxReported violations and counts the rest, so that a request full of
  // bad items (a million repeated values in a 2 MiB message) cannot make an answer larger
  // than itself.
  static constexpr size_t kMaxReported = 100;
  void Add(std::string field, std::string description) {
    if (violations_.size() >= kMaxReported) {
      ++more_;
      return;
    }
    violations_.push_back({std::move(field), std::move(description)});
  }
  bool empty() const { return violations_.empty(); }
  const std::vector<FieldViolation>& violations() const { return violations_; }

  // OK when empty; otherwise INVALID_ARGUMENT whose message names every field and whose
  // payload carries a google.rpc.BadRequest that ToGrpcStatus sends to the client.
  absl::Status ToStatus() const;

 private:
  std::vector<FieldViolation> violations_;
  size_t more_ = 0;  // violations beyond kMaxReported
};

// The field violations carried by an INVALID_ARGUMENT status built by FieldViolations.
std::vector<FieldViolation> GetFieldViolations(const absl::Status& status);

// Error reasons (protos/rogatory/common/v1/errors.proto): every non-OK status a service
// answers carries a google.rpc.ErrorInfo with domain kErrorDomain and a reason from the
// ErrorReason enum. A handler names the reason where it knows it (WithReason, StaleEtag,
// TransitionNotAllowed); ToGrpcStatus adds DefaultReason(code) to any status that has none,
// so errors made by the pipeline itself (authentication, rate limits, the role table,
// bounds, malformed bytes) carry one too.
inline constexpr absl::string_view kErrorDomain = "rogatory";

// The wire form of `reason`: its enum name without "ERROR_REASON_" ("STALE_ETAG").
std::string ReasonName(v1::ErrorReason reason);
// The reason of an error of `code` that names none. Defined for every code but OK.
v1::ErrorReason DefaultReason(absl::StatusCode code);

// Key and value of ErrorInfo.metadata: values a UI can use, never personal data.
using ErrorMetadata = std::vector<std::pair<std::string, std::string>>;

// `status` with a google.rpc.ErrorInfo naming `reason` (replacing any it had). OK stays OK.
absl::Status WithReason(absl::Status status, v1::ErrorReason reason, ErrorMetadata metadata = {});

// ABORTED, reason STALE_ETAG: `sent` is not the current etag of `subject` (a resource id).
// Metadata current_etag; a google.rpc.PreconditionFailure names the subject.
absl::Status StaleEtag(absl::string_view subject, absl::string_view current_etag,
                       std::string message);

// FAILED_PRECONDITION, reason TRANSITION_NOT_ALLOWED: `subject` in `current_status` cannot
// make the move `message` describes; `allowed_next` lists what it can (comma-separated;
// empty: metadata allowed_next_statuses is left out).
absl::Status TransitionNotAllowed(absl::string_view subject, absl::string_view current_status,
                                  absl::string_view allowed_next, std::string message);

// The ErrorInfo a status carries, if any.
std::optional<google::rpc::ErrorInfo> GetErrorInfo(const absl::Status& status);
// For clients and tests: the ErrorInfo (and PreconditionFailure) in a grpc::Status's
// binary details, if any.
std::optional<google::rpc::ErrorInfo> GetErrorInfo(const grpc::Status& status);
std::optional<google::rpc::PreconditionFailure> GetPreconditionFailure(const grpc::Status& status);

// Maps an absl::Status to a grpc::Status with the same code and message and, in the
// binary details, a google.rpc.Status carrying the google.rpc details (ErrorInfo,
// BadRequest, PreconditionFailure) that the status holds as payloads. A non-OK status
// without ErrorInfo gets one with DefaultReason(code).
grpc::Status ToGrpcStatus(const absl::Status& status);

// The reverse, for clients: code and message (details dropped).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace rogatory::common
