#include "rogatory/common/status.h"

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace rogatory::common {
namespace {

constexpr absl::string_view kBadRequestType = "type.googleapis.com/google.rpc.BadRequest";
constexpr absl::string_view kErrorInfoType = "type.googleapis.com/google.rpc.ErrorInfo";
constexpr absl::string_view kPreconditionFailureType =
    "type.googleapis.com/google.rpc.PreconditionFailure";

absl::Status WithPreconditionFailure(absl::Status status, absl::string_view type,
                                     absl::string_view subject, absl::string_view description) {
  google::rpc::PreconditionFailure failure;
  auto* v = failure.add_violations();
  v->set_type(std::string(type));
  v->set_subject(std::string(subject));
  v->set_description(std::string(description));
  status.SetPayload(kPreconditionFailureType, absl::Cord(failure.SerializeAsString()));
  return status;
}

template <typename Message>
std::optional<Message> DetailOf(const grpc::Status& status, absl::string_view type_url) {
  if (status.error_details().empty()) return std::nullopt;
  google::rpc::Status rpc_status;
  if (!rpc_status.ParseFromString(status.error_details())) return std::nullopt;
  for (const auto& any : rpc_status.details()) {
    if (any.type_url() != type_url) continue;
    Message m;
    if (m.ParseFromString(any.value())) return m;
  }
  return std::nullopt;
}

}  // namespace

absl::Status FieldViolations::ToStatus() const {
  if (violations_.empty()) return absl::OkStatus();
  google::rpc::BadRequest bad_request;
  std::vector<std::string> parts;
  for (const FieldViolation& v : violations_) {
    auto* fv = bad_request.add_field_violations();
    fv->set_field(v.field);
    fv->set_description(v.description);
    parts.push_back(absl::StrCat(v.field, ": ", v.description));
  }
  if (more_ > 0) parts.push_back(absl::StrCat("and ", more_, " more"));
  absl::Status status =
      absl::InvalidArgumentError(absl::StrCat("invalid request: ", absl::StrJoin(parts, "; ")));
  status.SetPayload(kBadRequestType, absl::Cord(bad_request.SerializeAsString()));
  // A page token that is the only fault has its own reason: the UI starts the list again.
  const bool page_token =
      violations_.size() == 1 && more_ == 0 && violations_.front().field == "page_token";
  return WithReason(
      std::move(status),
      page_token ? v1::ERROR_REASON_PAGE_TOKEN_INVALID : v1::ERROR_REASON_INVALID_FIELD,
      {{"field", violations_.front().field}});
}

std::string ReasonName(v1::ErrorReason reason) {
  std::string name = v1::ErrorReason_Name(reason);
  constexpr absl::string_view kPrefix = "ERROR_REASON_";
  if (absl::StartsWith(name, kPrefix)) name.erase(0, kPrefix.size());
  return name;
}

v1::ErrorReason DefaultReason(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return v1::ERROR_REASON_UNSPECIFIED;
    case absl::StatusCode::kCancelled:
      return v1::ERROR_REASON_CANCELLED;
    case absl::StatusCode::kInvalidArgument:
      return v1::ERROR_REASON_INVALID_FIELD;
    case absl::StatusCode::kDeadlineExceeded:
      return v1::ERROR_REASON_DEADLINE_EXCEEDED;
    case absl::StatusCode::kNotFound:
      return v1::ERROR_REASON_NOT_FOUND;
    case absl::StatusCode::kAlreadyExists:
      return v1::ERROR_REASON_ALREADY_EXISTS;
    case absl::StatusCode::kPermissionDenied:
      return v1::ERROR_REASON_PERMISSION_DENIED;
    case absl::StatusCode::kResourceExhausted:
      return v1::ERROR_REASON_RATE_LIMITED;
    case absl::StatusCode::kFailedPrecondition:
      return v1::ERROR_REASON_FAILED_PRECONDITION;
    case absl::StatusCode::kAborted:
      return v1::ERROR_REASON_CONCURRENT_CHANGE;
    case absl::StatusCode::kOutOfRange:
      return v1::ERROR_REASON_OUT_OF_RANGE;
    case absl::StatusCode::kUnimplemented:
      return v1::ERROR_REASON_UNIMPLEMENTED;
    case absl::StatusCode::kUnavailable:
      return v1::ERROR_REASON_STORE_UNAVAILABLE;
    case absl::StatusCode::kUnauthenticated:
      return v1::ERROR_REASON_UNAUTHENTICATED;
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
    default:
      return v1::ERROR_REASON_INTERNAL;
  }
}

absl::Status WithReason(absl::Status status, v1::ErrorReason reason, ErrorMetadata metadata) {
  if (status.ok()) return status;
  google::rpc::ErrorInfo info;
  info.set_domain(std::string(kErrorDomain));
  info.set_reason(ReasonName(reason));
  for (auto& [key, value] : metadata) (*info.mutable_metadata())[key] = std::move(value);
  status.SetPayload(kErrorInfoType, absl::Cord(info.SerializeAsString()));
  return status;
}

absl::Status StaleEtag(absl::string_view subject, absl::string_view current_etag,
                       std::string message) {
  absl::Status status = absl::AbortedError(message);
  status = WithPreconditionFailure(std::move(status), ReasonName(v1::ERROR_REASON_STALE_ETAG),
                                   subject, message);
  return WithReason(std::move(status), v1::ERROR_REASON_STALE_ETAG,
                    {{"current_etag", std::string(current_etag)}});
}

absl::Status TransitionNotAllowed(absl::string_view subject, absl::string_view current_status,
                                  absl::string_view allowed_next, std::string message) {
  absl::Status status = absl::FailedPreconditionError(message);
  status = WithPreconditionFailure(
      std::move(status), ReasonName(v1::ERROR_REASON_TRANSITION_NOT_ALLOWED), subject, message);
  ErrorMetadata metadata = {{"current_status", std::string(current_status)}};
  if (!allowed_next.empty()) metadata.emplace_back("allowed_next_statuses", allowed_next);
  return WithReason(std::move(status), v1::ERROR_REASON_TRANSITION_NOT_ALLOWED,
                    std::move(metadata));
}

std::optional<google::rpc::ErrorInfo> GetErrorInfo(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorInfoType);
  if (!payload.has_value()) return std::nullopt;
  google::rpc::ErrorInfo info;
  if (!info.ParseFromString(std::string(*payload))) return std::nullopt;
  return info;
}

std::optional<google::rpc::ErrorInfo> GetErrorInfo(const grpc::Status& status) {
  return DetailOf<google::rpc::ErrorInfo>(status, kErrorInfoType);
}

std::optional<google::rpc::PreconditionFailure> GetPreconditionFailure(const grpc::Status& status) {
  return DetailOf<google::rpc::PreconditionFailure>(status, kPreconditionFailureType);
}

std::vector<FieldViolation> GetFieldViolations(const absl::Status& status) {
  std::vector<FieldViolation> out;
  auto payload = status.GetPayload(kBadRequestType);
  if (!payload.has_value()) return out;
  google::rpc::BadRequest bad_request;
  if (!bad_request.ParseFromString(std::string(*payload))) return out;
  for (const auto& fv : bad_request.field_violations()) {
    out.push_back({fv.field(), fv.description()});
  }
  return out;
}

grpc::Status ToGrpcStatus(const absl::Status& given) {
  if (given.ok()) return grpc::Status::OK;
  // Nothing leaves without a reason (errors.proto).
  const absl::Status status = given.GetPayload(kErrorInfoType).has_value()
                                  ? given
                                  : WithReason(given, DefaultReason(given.code()));
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const std::string message(status.message());
  google::rpc::Status rpc_status;
  rpc_status.set_code(static_cast<int>(status.code()));
  rpc_status.set_message(message);
  // The other details first and the ErrorInfo last, whatever order the payloads are kept
  // in: clients that read the first detail as the BadRequest keep working.
  std::optional<std::string> error_info;
  status.ForEachPayload(
      [&rpc_status, &error_info](absl::string_view type_url, const absl::Cord& value) {
        if (!absl::StartsWith(type_url, "type.googleapis.com/google.rpc.")) return;
        if (type_url == kErrorInfoType) {
          error_info = std::string(value);
          return;
        }
        auto* any = rpc_status.add_details();
        any->set_type_url(std::string(type_url));
        any->set_value(std::string(value));
      });
  if (error_info.has_value()) {
    auto* any = rpc_status.add_details();
    any->set_type_url(std::string(kErrorInfoType));
    any->set_value(*std::move(error_info));
  }
  return grpc::Status(code, message, rpc_status.SerializeAsString());
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace rogatory::common
