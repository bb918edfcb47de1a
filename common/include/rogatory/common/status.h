#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

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

// Maps an absl::Status to a grpc::Status with the same code and message and, in the
// binary details, a google.rpc.Status carrying the google.rpc details (BadRequest) that
// the status holds as payloads.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The reverse, for clients: code and message (details dropped).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace rogatory::common
