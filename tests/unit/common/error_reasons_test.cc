// Issue 20, item 2: every error carries google.rpc.ErrorInfo (domain "rogatory") with a
// reason from the ErrorReason enum (errors.proto). ToGrpcStatus, the one place every status
// leaves through, gives a status without a reason the default reason of its code: checked
// here for every gRPC code, with the reasons handlers name and the details that come with
// them.
#include <set>
#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "rogatory/common/status.h"

namespace rogatory::common {
namespace {

// Every code gRPC defines besides OK (grpc::StatusCode runs 1..16).
constexpr int kFirstCode = 1;
constexpr int kLastCode = 16;

TEST(ErrorReasonsTest, EveryCodeHasADefaultReasonFromTheEnum) {
  const auto* reasons = v1::ErrorReason_descriptor();
  for (int code = kFirstCode; code <= kLastCode; ++code) {
    const auto c = static_cast<absl::StatusCode>(code);
    const v1::ErrorReason reason = DefaultReason(c);
    EXPECT_NE(reason, v1::ERROR_REASON_UNSPECIFIED) << absl::StatusCodeToString(c);
    EXPECT_NE(reasons->FindValueByNumber(reason), nullptr) << absl::StatusCodeToString(c);
    const std::string name = ReasonName(reason);
    EXPECT_EQ(name.find("ERROR_REASON_"), std::string::npos) << name;
    EXPECT_FALSE(name.empty());
    for (char ch : name) {
      EXPECT_TRUE((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_') << name;
    }
  }
}

TEST(ErrorReasonsTest, EveryNonOkGrpcStatusCarriesErrorInfo) {
  for (int code = kFirstCode; code <= kLastCode; ++code) {
    const auto c = static_cast<absl::StatusCode>(code);
    const grpc::Status g = ToGrpcStatus(absl::Status(c, "something failed"));
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    EXPECT_EQ(g.error_message(), "something failed");
    auto info = GetErrorInfo(g);
    ASSERT_TRUE(info.has_value()) << absl::StatusCodeToString(c);
    EXPECT_EQ(info->domain(), "rogatory");
    EXPECT_EQ(info->reason(), ReasonName(DefaultReason(c)));
    // The details are a google.rpc.Status with the same code and message.
    google::rpc::Status rpc;
    ASSERT_TRUE(rpc.ParseFromString(g.error_details()));
    EXPECT_EQ(rpc.code(), code);
    EXPECT_EQ(rpc.message(), "something failed");
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).error_details().empty());
}

TEST(ErrorReasonsTest, DefaultReasonsOfTheCommonCodes) {
  EXPECT_EQ(ReasonName(DefaultReason(absl::StatusCode::kInvalidArgument)), "INVALID_FIELD");
  EXPECT_EQ(ReasonName(DefaultReason(absl::StatusCode::kNotFound)), "NOT_FOUND");
  EXPECT_EQ(ReasonName(DefaultReason(absl::StatusCode::kPermissionDenied)), "PERMISSION_DENIED");
  EXPECT_EQ(ReasonName(DefaultReason(absl::StatusCode::kUnauthenticated)), "UNAUTHENTICATED");
  EXPECT_EQ(ReasonName(DefaultReason(absl::StatusCode::kResourceExhausted)), "RATE_LIMITED");
  EXPECT_EQ(ReasonName(DefaultReason(absl::StatusCode::kUnavailable)), "STORE_UNAVAILABLE");
  EXPECT_EQ(ReasonName(DefaultReason(absl::StatusCode::kDeadlineExceeded)), "DEADLINE_EXCEEDED");
  EXPECT_EQ(ReasonName(DefaultReason(absl::StatusCode::kAborted)), "CONCURRENT_CHANGE");
}

TEST(ErrorReasonsTest, AHandlersReasonIsKeptWithItsMetadata) {
  const grpc::Status g = ToGrpcStatus(WithReason(absl::ResourceExhaustedError("quota"),
                                                 v1::ERROR_REASON_QUOTA_EXCEEDED,
                                                 {{"limit", "max-document-bytes-per-request"}}));
  auto info = GetErrorInfo(g);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "QUOTA_EXCEEDED");
  EXPECT_EQ(info->metadata().at("limit"), "max-document-bytes-per-request");
  // WithReason replaces an earlier reason; OK stays OK.
  const absl::Status twice =
      WithReason(WithReason(absl::AbortedError("x"), v1::ERROR_REASON_STALE_ETAG),
                 v1::ERROR_REASON_CONCURRENT_CHANGE);
  EXPECT_EQ(GetErrorInfo(twice)->reason(), "CONCURRENT_CHANGE");
  EXPECT_TRUE(WithReason(absl::OkStatus(), v1::ERROR_REASON_INTERNAL).ok());
}

TEST(ErrorReasonsTest, FieldViolationsAreInvalidFieldWithBadRequest) {
  FieldViolations v;
  v.Add("content.subjects[0].family_name", "is required");
  v.Add("urgency", "must be set");
  const grpc::Status g = ToGrpcStatus(v.ToStatus());
  auto info = GetErrorInfo(g);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "INVALID_FIELD");
  EXPECT_EQ(info->metadata().at("field"), "content.subjects[0].family_name");
  google::rpc::Status rpc;
  ASSERT_TRUE(rpc.ParseFromString(g.error_details()));
  std::set<std::string> types;
  for (const auto& any : rpc.details()) types.insert(any.type_url());
  EXPECT_TRUE(types.count("type.googleapis.com/google.rpc.BadRequest"));
  EXPECT_TRUE(types.count("type.googleapis.com/google.rpc.ErrorInfo"));
}

TEST(ErrorReasonsTest, ABadPageTokenAloneIsPageTokenInvalid) {
  FieldViolations v;
  v.Add("page_token", "is not a token this service issued");
  EXPECT_EQ(GetErrorInfo(v.ToStatus())->reason(), "PAGE_TOKEN_INVALID");
  v.Add("page_size", "must be at most 100");
  EXPECT_EQ(GetErrorInfo(v.ToStatus())->reason(), "INVALID_FIELD");
}

TEST(ErrorReasonsTest, StaleEtagCarriesPreconditionFailure) {
  const grpc::Status g = ToGrpcStatus(StaleEtag("dl-3-01abc", "7", "etag \"6\" is stale"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::ABORTED);
  auto info = GetErrorInfo(g);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "STALE_ETAG");
  EXPECT_EQ(info->metadata().at("current_etag"), "7");
  auto failure = GetPreconditionFailure(g);
  ASSERT_TRUE(failure.has_value());
  ASSERT_EQ(failure->violations_size(), 1);
  EXPECT_EQ(failure->violations(0).type(), "STALE_ETAG");
  EXPECT_EQ(failure->violations(0).subject(), "dl-3-01abc");
  EXPECT_FALSE(failure->violations(0).description().empty());
}

TEST(ErrorReasonsTest, TransitionNotAllowedCarriesWhatIsAllowed) {
  const grpc::Status g = ToGrpcStatus(TransitionNotAllowed("rq-1-01abc", "REQUEST_STATUS_CLOSED",
                                                           "none", "a closed request cannot move"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  auto info = GetErrorInfo(g);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "TRANSITION_NOT_ALLOWED");
  EXPECT_EQ(info->metadata().at("current_status"), "REQUEST_STATUS_CLOSED");
  EXPECT_EQ(info->metadata().at("allowed_next_statuses"), "none");
  auto failure = GetPreconditionFailure(g);
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->violations(0).type(), "TRANSITION_NOT_ALLOWED");
  EXPECT_EQ(failure->violations(0).subject(), "rq-1-01abc");
}

}  // namespace
}  // namespace rogatory::common
