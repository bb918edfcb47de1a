#include "request_store.h"

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "document_store.h"
#include "google/protobuf/util/time_util.h"
#include "lifecycle.h"
#include "rogatory/common/status.h"

namespace rogatory::intake {
namespace {
constexpr char kStalePayload[] = "type.rogatory.dev/intake.StaleVersion";
}  // namespace

void RequestStore::GetRecorded(const std::string& id, const RecordedRead&, Done<ReadOutcome> done) {
  Get(id, [done = std::move(done)](absl::StatusOr<v1::Request> found) {
    if (!found.ok()) return done(found.status());
    done(ReadOutcome{*std::move(found), /*recorded=*/false});
  });
}

absl::Status StaleVersion(const std::string& current) {
  absl::Status s = common::StaleEtag("", current,
                                     absl::StrCat("the request changed (its etag is now \"",
                                                  current, "\"); read it again and retry"));
  s.SetPayload(kStalePayload, absl::Cord(current));
  return s;
}

bool IsStaleVersion(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted &&
         status.GetPayload(kStalePayload).has_value();
}

common::RequestParties PartiesOfRequest(const v1::Request& r) {
  common::RequestParties p;
  p.issuing_authority_id = r.content().issuing_authority().authority_id();
  p.issuing_state = r.content().issuing_authority().state();
  p.executing_authority_id = r.executing_authority().authority_id();
  p.requested_state = r.content().requested_state();
  p.notified_authority_id = r.notified_authority().authority_id();
  return p;
}

std::vector<std::pair<std::string, std::string>> IndexedFieldsOf(const v1::Request& r) {
  const auto& c = r.content();
  return {{"status", absl::StrCat(static_cast<int>(r.status()))},
          {"instrument", absl::StrCat(static_cast<int>(c.instrument()))},
          {"urgency", absl::StrCat(static_cast<int>(c.urgency()))},
          {"issuing_state", c.issuing_authority().state()},
          {"requested_state", c.requested_state()},
          {"issuing_authority", c.issuing_authority().authority_id()},
          {"executing_authority", r.executing_authority().authority_id()},
          {"next_due_ms", NextDueMs(r) ? absl::StrCat(*NextDueMs(r)) : ""}};
}

std::optional<int64_t> NextDueMs(const v1::Request& r) {
  if (!r.has_next_deadline() || !r.next_deadline().has_due_time()) return std::nullopt;
  return google::protobuf::util::TimeUtil::TimestampToMilliseconds(r.next_deadline().due_time());
}

int64_t NextDueKey(std::optional<int64_t> due_ms, int64_t created_ms) {
  return due_ms ? -*due_ms : kNoNextDue + created_ms;
}

v1::CallerSide SideOf(const common::ListScope& scope, const common::RequestParties& p) {
  if (scope.all) return v1::CALLER_SIDE_UNSPECIFIED;
  const bool issuing =
      (!scope.authority_id.empty() && p.issuing_authority_id == scope.authority_id) ||
      (!scope.central_state.empty() && p.issuing_state == scope.central_state);
  return issuing ? v1::CALLER_SIDE_ISSUING : v1::CALLER_SIDE_EXECUTING;
}

bool MatchesFilters(const ListQuery& q, const v1::Request& r) {
  const auto& c = r.content();
  if (!q.statuses.empty() &&
      std::find(q.statuses.begin(), q.statuses.end(), r.status()) == q.statuses.end()) {
    return false;
  }
  if (q.open_only && !Lifecycle::Default().IsOpen(c.instrument(), r.status())) return false;
  if (q.next_due_before_ms) {
    const std::optional<int64_t> due = NextDueMs(r);
    if (!due || *due >= *q.next_due_before_ms) return false;
  }
  if (q.side != v1::CALLER_SIDE_UNSPECIFIED || !q.counterpart_state.empty()) {
    if (!q.scope || q.scope->all) return false;
    const common::RequestParties parties = PartiesOfRequest(r);
    const v1::CallerSide side = SideOf(*q.scope, parties);
    if (q.side != v1::CALLER_SIDE_UNSPECIFIED && side != q.side) return false;
    if (!q.counterpart_state.empty() &&
        (side == v1::CALLER_SIDE_ISSUING ? parties.requested_state : parties.issuing_state) !=
            q.counterpart_state) {
      return false;
    }
  }
  return (!q.scope || common::InScope(*q.scope, PartiesOfRequest(r))) &&
         (q.status == 0 || r.status() == q.status) &&
         (q.instrument == 0 || c.instrument() == q.instrument) &&
         (q.issuing_state.empty() || c.issuing_authority().state() == q.issuing_state) &&
         (q.requested_state.empty() || c.requested_state() == q.requested_state) &&
         (q.urgency == 0 || c.urgency() == q.urgency) &&
         (!q.created_from_ms || google::protobuf::util::TimeUtil::TimestampToMilliseconds(
                                    r.create_time()) >= *q.created_from_ms) &&
         (!q.created_to_ms || google::protobuf::util::TimeUtil::TimestampToMilliseconds(
                                  r.create_time()) < *q.created_to_ms);
}

ListCursor CursorOf(const v1::Request& r, bool by_update) {
  return {google::protobuf::util::TimeUtil::TimestampToMilliseconds(by_update ? r.update_time()
                                                                              : r.create_time()),
          r.id()};
}

ListCursor CursorOf(const v1::Request& r, const ListQuery& q) {
  if (q.by_next_due) {
    return {NextDueKey(NextDueMs(r),
                       google::protobuf::util::TimeUtil::TimestampToMilliseconds(r.create_time())),
            r.id()};
  }
  return CursorOf(r, q.by_update);
}

bool ComesBefore(const ListCursor& a, const ListCursor& b) {
  if (a.create_ms != b.create_ms) return a.create_ms > b.create_ms;
  return a.id > b.id;
}

absl::Status DocumentQuotaExceeded(bool request, int64_t used, int64_t limit, int64_t adding) {
  return common::WithReason(
      absl::ResourceExhaustedError(absl::StrCat(
          "document quota exceeded: ",
          request ? "the request's documents use " : "the documents your authority uploaded use ",
          used, " of the ", limit, " bytes that ",
          request ? "max-document-bytes-per-request" : "max-document-bytes-per-authority",
          " allows, and this document would add ", adding,
          request ? "" : "; retention gives the bytes of erased requests back")),
      common::v1::ERROR_REASON_QUOTA_EXCEEDED,
      {{"limit", request ? "max-document-bytes-per-request" : "max-document-bytes-per-authority"}});
}

}  // namespace rogatory::intake
