#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/routing/v1/routing.pb.h"
#include "routing_store.h"

namespace rogatory::routing {

// A translator's queue (ListTranslationJobs with `queue`): who may list it, what of a job
// it shows, and the page tokens.

// Who may list a queue: CLAIMABLE, translators (role "translator"), operators and Rogatory
// services; HELD, translators (their own leases) and services. Anyone else is refused with
// PERMISSION_DENIED (the queues are not a request's records, so no existence leaks).
absl::Status QueueListAccess(const common::Caller& caller, v1::TranslationJobQueue queue);

// What a claimable job shows to a caller who is not a party of its request: the job's id,
// languages, status, urgency, due and creation times. Never the request, the document, the
// attempts or a holder (need-to-know; a translator learns a request only by claiming).
v1::TranslationJob ClaimableView(const v1::TranslationJob& job);

// The filters a page token is bound to (all but page size and token).
std::string QueueFingerprint(const v1::ListTranslationJobsRequest& request);

// Opaque page tokens: web-safe base64 of the cursor and the filters' fingerprint. Decoding
// fails (INVALID_ARGUMENT on `page_token`) for a token not made by EncodeQueueToken or made
// under other filters.
std::string EncodeQueueToken(const QueueCursor& cursor, const std::string& fingerprint);
absl::StatusOr<QueueCursor> DecodeQueueToken(const std::string& token,
                                             const std::string& fingerprint);

}  // namespace rogatory::routing
