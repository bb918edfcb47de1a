#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rogatory/common/access.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/v1/events.pb.h"
#include "rogatory/intake/v1/intake.pb.h"

namespace rogatory::intake {

// An AIP-155 idempotency record: the caller's key and a fingerprint of what it sent.
struct Idempotency {
  std::string scope;        // the caller's authority id
  std::string request_id;   // the caller's key
  std::string fingerprint;  // SHA-256 of the deterministic serialization of the payload
};

// A request to store, with its first history event.
struct NewRequest {
  v1::Request request;  // id, status, times and etag already set
  common::v1::Event submitted;
  std::optional<Idempotency> idempotency;
};

struct CreateOutcome {
  v1::Request request;
  bool replayed = false;  // true: an earlier call with the same key created it
};

// A position in the list order (newest first): the sort time, then id, both descending.
// The sort time is the creation time, or the last update time for lists by update.
struct ListCursor {
  int64_t create_ms = 0;  // the sort time (ms)
  std::string id;
};

struct ListQuery {
  common::v1::RequestStatus status = common::v1::REQUEST_STATUS_UNSPECIFIED;
  common::v1::Instrument instrument = common::v1::INSTRUMENT_UNSPECIFIED;
  std::string issuing_state;
  std::string requested_state;
  common::v1::Urgency urgency = common::v1::URGENCY_UNSPECIFIED;
  std::optional<int64_t> created_from_ms;  // inclusive
  std::optional<int64_t> created_to_ms;    // exclusive
  // Most recently updated first instead of newest created first. A request updated while
  // a client pages moves to the front: it may then be missed or seen twice, which a
  // creation-ordered list never does.
  bool by_update = false;
  // Soonest next due deadline first, requests with none last (see NextDueKey); not with
  // by_update.
  bool by_next_due = false;
  // Only requests in one of these statuses (empty: any); combines with `status`.
  std::vector<common::v1::RequestStatus> statuses;
  // Only open requests (Lifecycle::IsOpen).
  bool open_only = false;
  // The caller's side and the counterpart's state; need `scope` with an authority.
  v1::CallerSide side = v1::CALLER_SIDE_UNSPECIFIED;
  std::string counterpart_state;
  // Only requests with an open deadline due before this (ms, exclusive).
  std::optional<int64_t> next_due_before_ms;
  int page_size = 50;
  std::optional<ListCursor> after;  // start strictly after this position
  // Need-to-know: only requests in this scope (see common/access.h); nullopt: all.
  std::optional<common::ListScope> scope;
};

// What a change is computed on: the request as stored, its version, and (when the change
// carries an idempotency key already used) the earlier result.
struct Snapshot {
  v1::Request request;                // status, etag and update time from the authoritative fields
  int64_t version = 0;                // the etag as a number
  std::optional<std::string> replay;  // serialized result of the earlier call with the key
};

// A staged document to make visible with a change (see DocumentStore): its chunks' key,
// which stops expiring, and the request's document list, which gets its metadata.
// The commit also charges the document's size to the request's and the uploading
// authority's document quotas (see DocumentQuota), refusing it when either would be
// exceeded.
struct DocumentCommit {
  std::string data_key;
  std::string list_key;
  std::string document;             // serialized v1::Document
  std::string usage_key;            // the request's document bytes (RedisDocumentStore)
  std::string authority_usage_key;  // the shard's per-authority document bytes
  std::string authority;            // who the document is charged to
  int64_t size_bytes = 0;
  int64_t max_request_bytes = 0;    // 0: no bound
  int64_t max_authority_bytes = 0;  // 0: no bound
  // The authority's committed bytes in the other shards (RedisDocumentStore reads them just
  // before the commit; the quota is over this plus the commit's own shard).
  int64_t authority_bytes_elsewhere = 0;
};

// One change of a stored request, written in ONE atomic step: guarded by the version it
// was computed on, it may replace the stored request, set hash fields (each indexed field
// moves between its indexes), bump the version, append history events, add events to the
// outbox, record an idempotency key with the serialized result, and mark a received event
// handled.
struct Mutation {
  std::string id;
  // The version the change was computed on; a different stored version answers ABORTED.
  // nullopt: no guard (appending a history event only).
  std::optional<int64_t> expected_version;
  // The version after the change; nullopt keeps it (and the update time).
  std::optional<int64_t> new_version;
  int64_t updated_ms = 0;
  // Replaces the stored request pb when set (status, etag and update time stay the hash
  // fields' business).
  std::optional<v1::Request> request;
  // Indexed hash fields to set: status, instrument, urgency, issuing_state,
  // requested_state, and the party fields issuing_authority and executing_authority (which
  // feed the need-to-know party indexes; see RedisRequestStore); next_due_ms (the worklist
  // rows' next due time) and nd, the serialized NextDeadline ('' = none), which is kept
  // apart from the stored request: authoritative over `request`'s next_deadline, neither
  // checked nor indexed, and left alone by a change that replaces the request. Only fields
  // that change need be listed.
  std::vector<std::pair<std::string, std::string>> fields;
  // The indexed fields as the snapshot the change was computed on has them
  // (IndexedFieldsOf(snapshot.request)), when `fields` is set: a store that indexes them
  // computes from these which index entries the change moves, in the same step that applies
  // it, and checks them there. Missing or out of date, they cost a retry, never a wrong index.
  std::vector<std::pair<std::string, std::string>> fields_before;
  std::vector<common::v1::Event> history;  // appended in order
  std::vector<common::v1::Event> outbox;   // emitted in order
  std::optional<Idempotency> idempotency;
  std::string result;                    // what a replay of the idempotency key answers
  std::optional<common::Dedupe> dedupe;  // for events received from other services
  // Set by a DocumentStore commit; a store without documents ignores it.
  std::optional<DocumentCommit> document;
};

struct MutationOutcome {
  enum class Kind { kApplied, kReplayed, kDuplicate };
  Kind kind = Kind::kApplied;
  std::string result;  // kReplayed: the earlier call's serialized result
};

struct HistoryPage {
  std::vector<common::v1::Event> events;
  int64_t total = 0;  // events in the whole history
};

struct ListPage {
  std::vector<v1::Request> requests;
  // Where the next page starts; empty at the end. A page may hold fewer than page_size
  // requests and still have a next page (the scan of a shard is bounded).
  std::optional<ListCursor> next;
};

// Retention (see retention.h). A change that moves a request to a status its lifecycle
// never leaves in substance (Lifecycle::IsOpen false: executed, refused, withdrawn,
// closed...) enters it, with the change's time, in the index of closed requests, in the
// same atomic step; a move back to an open status takes it out. Once closed for the
// retention period, erasure step 1 replaces the request by a tombstone (no personal data)
// and drops its documents; once the tombstone is kept for its own period, step 2 removes
// the request entirely. Each step is one atomic, idempotent, guarded step and leaves a
// pending-audit mark that stays until the erasure is recorded in the audit log.
enum class ErasureStep { kPersonalData = 1, kRequest = 2 };

struct PendingErasureAudit {
  std::string id;
  ErasureStep step = ErasureStep::kPersonalData;
  int64_t erased_ms = 0;
};

// What retention has to do now, oldest first, at most `limit` of each kind per shard.
struct RetentionWork {
  std::vector<std::string> personal;  // closed at or before the cutoff: erase personal data
  std::vector<std::string> whole;     // tombstones made at or before the cutoff: erase all
  std::vector<PendingErasureAudit> unaudited;  // erasures not yet in the audit log
};

// Step 1 of a request's erasure, computed on a snapshot of it.
struct PersonalDataErasure {
  std::string id;
  int64_t expected_version = 0;  // the snapshot's version; another answers ABORTED
  int64_t closed_before_ms = 0;  // the request must still be closed since at most this
  int64_t now_ms = 0;
  v1::Request tombstone;                  // what remains (see MakeTombstone); etag = version + 1
  std::vector<std::string> document_ids;  // every committed document of the request
  common::v1::Event erased;               // REQUEST_ERASED: appended to the history and emitted
};

// A read on a caller's behalf whose audit entry may be written with the read itself (one
// Redis round trip for both): when the stored request's parties are in `scope` (the
// ListScope rule), the store writes `entry` in the same step and says so.
struct RecordedRead {
  common::ListScope scope;
  common::PreparedAuditEntry entry;
};
struct ReadOutcome {
  v1::Request request;
  bool recorded = false;  // `entry` was written with the read
};

// Where intake keeps requests. Implementations complete asynchronously and never block the
// caller; callbacks may run on another thread. Errors: NOT_FOUND, ALREADY_EXISTS (same
// idempotency key, different fingerprint), UNAVAILABLE (store unreachable: retryable).
class RequestStore {
 public:
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;

  virtual ~RequestStore() = default;

  // Stores a new request and its first history event in one atomic step. With an
  // idempotency record already present for (scope, request_id): the request created then
  // (replayed = true) if the fingerprint matches, else ALREADY_EXISTS. Concurrent calls
  // with one key create exactly one request.
  virtual void Create(NewRequest request, Done<CreateOutcome> done) = 0;

  // The request with this id; NOT_FOUND if none.
  virtual void Get(const std::string& id, Done<v1::Request> done) = 0;

  // Get, writing the read's audit entry in the same step when the caller's scope reaches
  // the request. The request is returned either way: the caller's access check decides what
  // is disclosed. This default reads only (recorded = false): for stores without the
  // audit log beside them.
  virtual void GetRecorded(const std::string& id, const RecordedRead& read, Done<ReadOutcome> done);

  // Requests matching the query, newest first.
  virtual void List(const ListQuery& query, Done<ListPage> done) = 0;

  // The history of a request, oldest first.
  virtual void History(const std::string& id, Done<std::vector<common::v1::Event>> done) = 0;

  // Events [offset, offset + limit) of a request's history, oldest first, and how many it
  // holds. A history only grows, so offsets are stable page positions. NOT_FOUND if the
  // request does not exist.
  virtual void HistoryRange(const std::string& id, int64_t offset, int limit,
                            Done<HistoryPage> done) = 0;

  // The request and its version, to compute a change on. With `idempotency` set and its
  // key already used: the earlier result in `replay` if the fingerprint matches, else
  // ALREADY_EXISTS. NOT_FOUND if no request has that id.
  virtual void Load(const std::string& id, const std::optional<Idempotency>& idempotency,
                    Done<Snapshot> done) = 0;

  // Applies a change atomically (see Mutation). Answers kReplayed with the earlier result
  // when the idempotency key was used with the same fingerprint (ALREADY_EXISTS with
  // another), kDuplicate when the dedupe marker is already set, ABORTED when the stored
  // version is not `expected_version`, NOT_FOUND when the request does not exist. Checks
  // run in that order, so concurrent duplicates of one call apply exactly once.
  virtual void Mutate(Mutation mutation, Done<MutationOutcome> done) = 0;

  // Retention: the erasures due (see RetentionWork), read from bounded index ranges.
  virtual void FindRetentionWork(int64_t closed_before_ms, int64_t tombstoned_before_ms, int limit,
                                 Done<RetentionWork> done) = 0;

  // Erasure step 1, atomically: the request's record becomes `tombstone` (version bumped),
  // its documents (metadata and bytes) are deleted, it moves from the closed index to the
  // tombstone index, the REQUEST_ERASED event is appended to its history and emitted, and
  // a pending audit is marked. true if applied; false (nothing changed) if the request is
  // gone, already a tombstone, or not closed since `closed_before_ms`; ABORTED if its
  // version is not `expected_version` or its documents changed (recompute and retry).
  virtual void ErasePersonalData(PersonalDataErasure erasure, Done<bool> done) = 0;

  // Erasure step 2, atomically: removes the tombstone, its history and its index entries,
  // and marks a pending audit. true if applied; false (nothing changed) if there is no
  // tombstone made at or before `tombstoned_before_ms`.
  virtual void EraseRequest(const std::string& id, int64_t tombstoned_before_ms, int64_t now_ms,
                            Done<bool> done) = 0;

  // Clears a pending-audit mark once the erasure is in the audit log (idempotent).
  virtual void ErasureAudited(const PendingErasureAudit& audit, Done<bool> done) = 0;
};

// ABORTED: the stored version is not the one a change was computed on. `current` is the
// stored version. IsStaleVersion tells it apart from other ABORTED errors.
absl::Status StaleVersion(const std::string& current);
bool IsStaleVersion(const absl::Status& status);

// Who a stored request concerns (issuer, executing authority once routed, states).
common::RequestParties PartiesOfRequest(const v1::Request& request);

// The indexed hash fields of a request (see Mutation::fields): status, instrument, urgency,
// issuing_state, requested_state, issuing_authority, executing_authority, and next_due_ms
// (the next deadline's due time, '' when none: it feeds the worklist rows, no index of its
// own).
std::vector<std::pair<std::string, std::string>> IndexedFieldsOf(const v1::Request& request);

// True if the request matches the query's filters (and scope).
bool MatchesFilters(const ListQuery& query, const v1::Request& request);

// The caller's side of a request with these parties, for a scope with an authority: issuing
// when the scope's authority issued it or its central state is the issuing state, else
// executing. UNSPECIFIED for an unscoped (all) list.
v1::CallerSide SideOf(const common::ListScope& scope, const common::RequestParties& parties);

// The list position of a request (by creation, or by last update).
ListCursor CursorOf(const v1::Request& request, bool by_update = false);
// The list position of a request in the query's order.
ListCursor CursorOf(const v1::Request& request, const ListQuery& query);

// The sort key of the next-due order as a "newest first" time: soonest due comes first, so
// the key is -due_ms; a request with no open deadline sorts after every due one, newest
// created first (kNoNextDue + created_ms, far below any -due_ms); ties by id as every order.
inline constexpr int64_t kNoNextDue = -(int64_t{1} << 52);
int64_t NextDueKey(std::optional<int64_t> due_ms, int64_t created_ms);
// The due time (ms) of a request's next deadline, if it has one.
std::optional<int64_t> NextDueMs(const v1::Request& request);

// Whether `a` comes before `b` in list order (newest first).
bool ComesBefore(const ListCursor& a, const ListCursor& b);

}  // namespace rogatory::intake
