#pragma once

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "rogatory/intake/v1/intake.pb.h"

namespace rogatory::intake {

// Checks that a submission is well-formed: known enums, valid state and language codes,
// required ids present, lengths and counts within bounds. Returns INVALID_ARGUMENT listing
// every bad field path (google.rpc.BadRequest), or OK. Legal completeness is a separate
// question (see completeness.h): a well-formed request is accepted even if incomplete.
// `now` bounds dates of birth.
absl::Status ValidateSubmit(const v1::SubmitRequestRequest& request, absl::Time now);

// Checks the fields of a GetRequest / ListRequests call.
absl::Status ValidateGet(const v1::GetRequestRequest& request, int shard_count);
absl::Status ValidateList(const v1::ListRequestsRequest& request);
// The ListRequests filters that need a side (side, counterpart_state, the next due order):
// INVALID_ARGUMENT naming the field when the caller lists every request (`all`: services,
// auditors).
absl::Status ValidateListScope(const v1::ListRequestsRequest& request, bool all);

// Shape checks of the lifecycle RPCs (the lifecycle itself is checked against the stored
// request). Each returns INVALID_ARGUMENT listing every bad field.
absl::Status ValidateTransition(const v1::TransitionRequestRequest& request, int shard_count);
absl::Status ValidateAcknowledge(const v1::AcknowledgeRequestRequest& request, int shard_count);
absl::Status ValidateSupplement(const v1::SupplementRequestRequest& request, int shard_count);
absl::Status ValidateWithdraw(const v1::WithdrawRequestRequest& request, int shard_count);
absl::Status ValidateHistory(const v1::GetRequestHistoryRequest& request, int shard_count);

// The content fields SupplementRequest may replace: every RequestContent field but those
// fixed at submission (`instrument`, `issuing_authority`, `requested_state`).
bool IsSupplementablePath(const std::string& path);

// AIP-155 request ids: empty, or 1 to 64 characters of [A-Za-z0-9_-].
bool IsValidRequestId(const std::string& id);

}  // namespace rogatory::intake
