#include "queue_listing.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "rogatory/common/access.h"
#include "rogatory/common/ids.h"

namespace rogatory::routing {

absl::Status QueueListAccess(const common::Caller& caller, v1::TranslationJobQueue queue) {
  if (caller.is_service) return absl::OkStatus();
  const bool translator = caller.HasRole(common::kRoleTranslator);
  if (queue == v1::TRANSLATION_JOB_QUEUE_CLAIMABLE) {
    if (translator || caller.HasRole(common::kRoleOperator)) return absl::OkStatus();
    return absl::PermissionDeniedError(
        "only translators (role 'translator') and operators list the claimable jobs");
  }
  if (translator) return absl::OkStatus();
  return absl::PermissionDeniedError(
      "only translators (role 'translator') list the jobs they hold");
}

v1::TranslationJob ClaimableView(const v1::TranslationJob& job) {
  v1::TranslationJob out;
  out.set_id(job.id());
  out.set_source_language(job.source_language());
  out.set_target_language(job.target_language());
  out.set_status(job.status());
  out.set_urgency(job.urgency());
  if (job.has_due_time()) *out.mutable_due_time() = job.due_time();
  if (job.has_create_time()) *out.mutable_create_time() = job.create_time();
  return out;
}

std::string QueueFingerprint(const v1::ListTranslationJobsRequest& r) {
  v1::ListTranslationJobsRequest filters = r;
  filters.clear_page_size();
  filters.clear_page_token();
  // Deterministic serialization: the same filters always give the same bytes.
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    filters.SerializeToCodedStream(&coded);
  }
  return common::Sha256Hex(bytes).substr(0, 16);
}

std::string EncodeQueueToken(const QueueCursor& cursor, const std::string& fingerprint) {
  return absl::WebSafeBase64Escape(
      absl::StrCat("q1\n", fingerprint, "\n", cursor.score, "\n", cursor.id));
}

absl::StatusOr<QueueCursor> DecodeQueueToken(const std::string& token,
                                             const std::string& fingerprint) {
  std::string raw;
  const auto bad = absl::InvalidArgumentError(
      "page_token: is not a token from a previous "
      "response with the same filters");
  if (!absl::WebSafeBase64Unescape(token, &raw)) return bad;
  std::vector<std::string> parts = absl::StrSplit(raw, '\n');
  QueueCursor c;
  if (parts.size() != 4 || parts[0] != "q1" || parts[1] != fingerprint ||
      !absl::SimpleAtoi(parts[2], &c.score) || c.score < 0 || parts[3].empty() ||
      parts[3].size() > 64) {
    return bad;
  }
  c.id = parts[3];
  return c;
}

}  // namespace rogatory::routing
