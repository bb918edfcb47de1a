#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "inbox.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/notification/v1/notification.pb.h"
#include "subscription_filter.h"

namespace rogatory::notification {

// What the notification service's RPCs and its Subscribe streams keep in the store: inboxes
// and their acknowledgement pointers, delivery evidence, webhook subscriptions and dead
// letters. Every call is asynchronous: `done` runs exactly once, on the store's own thread
// (a Redis client's event loop), and must not block. Errors: UNAVAILABLE when the store
// cannot be reached, INTERNAL when it answers in a shape the call does not know. Shards are
// the caller's to compute (notification_keys.h says which shard holds what); ids are passed
// as the service validated them. Thread-safe.
class NotificationStore {
 public:
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;

  virtual ~NotificationStore() = default;

  // --- received events (the request's shard) ---

  // One event as the event handler receives it (notification_event_handler.h says what
  // receiving does: party record, "accepted" evidence, retrieval timers, one fan-out entry,
  // the catch-up of parties that join).
  struct ReceivedEvent {
    int shard = 0;
    common::Dedupe dedupe;  // the receiver's duplicate marker and its retention
    std::string event_id;
    std::string request_id;
    std::string event;  // serialized rogatory.common.v1.Event
    int64_t now_ms = 0;
    absl::Duration evidence_retention;
    int64_t due_ms = 0;  // when the recipients' retrieval timers fire; 0: no timer
    int instrument = 0;  // common.v1.Instrument
    int type = 0;        // common.v1.EventType
    std::vector<std::string> extra_recipients;  // "id@state", beyond the request's parties
    bool tell_translator = false;
    // "keep" (a party joining later must receive it), "drop" (its deadline ended: the
    // deadline's kept events are no longer owed) or "" (CatchUpActionOf).
    std::string catch_up_action;
    std::string deadline_id;
    int catch_up_limit = 0;  // the most events the request's catch-up list keeps
    // What the event says of the parties: iss, iss_st, exe, exe_st, cen, cen_st, tra,
    // tra_st, ntf, ntf_st, req_st, inst, each only when the event names it.
    std::vector<std::pair<std::string, std::string>> party_updates;
  };
  struct ReceiveResult {
    bool duplicate = false;  // received before: nothing changed
    int recipients = 0;      // the recipients of the event's own fan-out entry
    int caught_up = 0;       // catch-up entries written for parties that joined
  };
  virtual void ReceiveEvent(const ReceivedEvent& event, Done<ReceiveResult> done) = 0;

  // REQUEST_ERASED: drops the payloads of the request's events kept as evidence, their
  // retrieval timers and the request's catch-up list (the evidence records and the party
  // record stay). Once per `dedupe` marker. Returns how many events were erased (-1: a
  // duplicate, nothing changed).
  virtual void EraseRequest(int shard, const std::string& request_id, const common::Dedupe& dedupe,
                            Done<int> done) = 0;

  // --- the fan-out outbox and retrieval timers (a request's shard) ---
  // The outbox is read through one consumer group: replicas share a shard's entries, and an
  // entry stays pending with its reader until acknowledged.

  // Creates the shard's outbox and its consumer group unless they exist.
  virtual void PrepareFanout(int shard, Done<bool> done) = 0;

  struct FanoutRead {
    int shard = 0;
    std::string consumer;    // this replica
    int count = 0;           // the most entries to read
    bool own_first = false;  // this consumer's unacknowledged entries first (after a failure)
    // Entries another consumer read and left unacknowledged this long are taken over; 0:
    // none. (In memory there is no clock: any entry of another consumer counts as left.)
    int64_t claim_idle_ms = 0;
  };
  struct FanoutEntry {
    std::string id;
    // Deleted after it was read, or of a shape the store cannot read: acknowledge it.
    bool gone = false;
    std::map<std::string, std::string> fields;  // ev, to, acc, kind, st, inst, typ, about
  };
  struct FanoutBatch {
    bool own_drained = true;  // none of this consumer's own entries were pending
    std::vector<FanoutEntry> entries;
  };
  // Errors: FAILED_PRECONDITION when the consumer group does not exist (PrepareFanout).
  virtual void ReadFanout(const FanoutRead& read, Done<FanoutBatch> done) = 0;
  // Acknowledges and deletes entries; returns how many were deleted.
  virtual void AckFanout(int shard, const std::vector<std::string>& ids, Done<int> done) = 0;

  // Runs up to `limit` retrieval timers due at `now_ms`: re-announces an event its recipient
  // has not retrieved (a fan-out entry of kind "r") and waits `escalation_ms`; then, if still
  // not retrieved, sends a notice to another party (kind "x", "about" the recipient). Returns
  // how many timers were handled, and when the shard's next timer is due (no later than the
  // earliest timer left; INT64_MAX: none), so the fan-out sleeps until then instead of
  // polling (issue 19).
  struct TimerRun {
    int shard = 0;
    int64_t now_ms = 0;
    int limit = 0;
    int64_t escalation_ms = 0;
  };
  struct TimerOutcome {
    int handled = 0;
    int64_t next_due_ms = std::numeric_limits<int64_t>::max();
  };
  virtual void RunRetrievalTimers(const TimerRun& run, Done<TimerOutcome> done) = 0;

  // What is waiting in a shard: dead letters and running retrieval timers.
  struct Backlog {
    int64_t dead_letters = 0;
    int64_t unretrieved = 0;
  };
  virtual void CountBacklog(int shard, Done<Backlog> done) = 0;

  // --- inboxes (an authority's shard) ---

  // Where a stream over an inbox can start: entries older than `min_id` ("<ms>-0") and
  // beyond `max_length` are trimmed first; `floor` is the newest entry ever trimmed (a
  // cursor before it has a gap), `last` the newest entry ever added.
  struct InboxBounds {
    StreamId floor;
    StreamId last;
  };
  virtual void OpenInbox(int shard, const std::string& authority, const std::string& min_id,
                         int64_t max_length, Done<InboxBounds> done) = 0;

  // One inbox entry as the fan-out wrote it.
  struct InboxEntry {
    std::string cursor;  // its id, "<ms>-<seq>"
    StreamId id;
    std::string event;            // serialized rogatory.common.v1.Event
    std::string states;           // the request's states, ",DE,FR,"
    std::string recipient_state;  // "" when the fan-out did not know it
    int64_t accept_ms = 0;
    bool reannouncement = false;
  };
  // Up to `count` entries after `after`, read with the inbox's floor in the same atomic
  // step (a trim between the two cannot hide a gap). `examined` counts the entries read,
  // including any of a shape the call skips.
  struct InboxPage {
    StreamId floor;
    std::vector<InboxEntry> entries;
    size_t examined = 0;
  };
  virtual void ReadInbox(int shard, const std::string& authority, const StreamId& after,
                         size_t count, Done<InboxPage> done) = 0;

  // The entries after the inbox's acknowledgement pointer, up to and including `cursor`, at
  // most `max`: what an Ack of `cursor` records as retrieved.
  struct Unacked {
    std::string cursor;
    std::string event_id;
    std::string request_id;
  };
  virtual void ReadUnacked(int shard, const std::string& authority, const std::string& cursor,
                           int max, Done<std::vector<Unacked>> done) = 0;
  // Moves the acknowledgement pointer forward to `cursor` (never back). True when it moved.
  virtual void AdvanceAcked(int shard, const std::string& authority, const std::string& cursor,
                            Done<bool> done) = 0;

  // Delivers one notification into `recipient`'s inbox (the fan-out worker; the recipient's
  // shard): trims the inbox by age and length first (as OpenInbox), adds the entry and
  // enqueues a webhook job for each of `matched`, unless one exists. The caller filters: it
  // names the owner's subscriptions as it knows them (`subscription_ids`, sorted) and those
  // whose filter matches; when the owner's subscriptions differ, nothing is written and the
  // answer is kRetry with the current ids (a subscription's filter never changes once
  // created). A reannouncement (kind "r") enqueues no webhook and checks no subscription.
  struct InboxDelivery {
    int shard = 0;
    std::string recipient;
    std::string recipient_state;  // "" when the fan-out does not know it
    // The marker's name: the event id, "<event id>:r" for a reannouncement, or the
    // escalation notice's event id; also the webhook job's name after the subscription.
    std::string notification_id;
    // The batch's previous delivery to the same inbox, which must be in first (kBlocked
    // until it is); "" none.
    std::string previous_notification_id;
    std::string event;  // serialized rogatory.common.v1.Event
    std::string event_id;
    std::string request_id;
    std::string kind;    // "n" notification, "r" reannouncement, "x" escalation notice
    std::string states;  // the request's states, ",DE,FR,"
    int64_t accept_ms = 0;
    int64_t now_ms = 0;
    std::string min_id;  // "<ms>-0": older entries are trimmed
    int64_t max_length = 0;
    absl::Duration marker_retention;
    std::vector<std::string> subscription_ids;  // sorted
    std::vector<std::string> matched;           // a subset of subscription_ids
  };
  enum class DeliveryOutcome { kDelivered, kDuplicate, kBlocked, kRetry };
  struct DeliveryResult {
    DeliveryOutcome outcome = DeliveryOutcome::kDelivered;
    std::string cursor;                         // kDelivered: the new entry's id
    int jobs = 0;                               // kDelivered: webhook jobs enqueued
    std::vector<std::string> subscription_ids;  // kRetry: the owner's, sorted
  };
  virtual void DeliverToInbox(const InboxDelivery& delivery, Done<DeliveryResult> done) = 0;

  // --- delivery evidence (a request's shard) ---

  // Records that `recipient` retrieved each of `event_ids` (events of requests of
  // `shard`) and stops their retrieval timers. Evidence is kept `retention` from now. Returns
  // how many were newly retrieved.
  virtual void RecordRetrieved(int shard, const std::string& recipient,
                               const std::vector<std::string>& event_ids, absl::Time now,
                               absl::Duration retention, Done<int> done) = 0;

  // Records a stage of one event's delivery to `recipient` (through `subscription`, "" for
  // the inbox), only if the event was received. True when newly recorded.
  virtual void RecordStage(int shard, const std::string& event_id, v1::DeliveryStage stage,
                           const std::string& recipient, const std::string& subscription,
                           absl::Time now, absl::Duration retention, Done<bool> done) = 0;

  // The evidence of a request's events (at most `max_events`), or of one event, with the
  // request's parties as the party record holds them. Nullopt: nothing is known.
  struct EvidenceRecord {
    std::string event_id;
    v1::DeliveryStage stage = v1::DELIVERY_STAGE_UNSPECIFIED;
    std::string recipient;
    std::string subscription;
    int64_t record_ms = 0;
  };
  struct RequestEvidence {
    std::string request_id;
    std::string issuing, executing, central, translator, notified;  // authority ids or ""
    std::vector<EvidenceRecord> records;
  };
  virtual void ReadRequestEvidence(int shard, const std::string& request_id, int max_events,
                                   Done<std::optional<RequestEvidence>> done) = 0;
  virtual void ReadEventEvidence(int shard, const std::string& event_id,
                                 Done<std::optional<RequestEvidence>> done) = 0;

  // --- webhook subscriptions (the owner's shard) ---

  struct StoredSubscription {
    std::string id;
    std::string endpoint_uri;
    EncodedFilter filter;
    int64_t create_ms = 0;
    int64_t rotate_ms = 0;  // 0: never rotated
    std::string secret;
  };
  struct NewSubscription {
    int shard = 0;
    std::string id;
    std::string owner, owner_state;
    std::string endpoint_uri;
    EncodedFilter filter;
    int64_t create_ms = 0;
    std::string secret;
    // Idempotency: the caller's request id ("": none), the fingerprint of what it asks
    // for, and how long the record is kept.
    std::string request_id;
    std::string fingerprint;
    absl::Duration idempotency_ttl;
    int max_per_owner = 0;
  };
  enum class CreateOutcome {
    kCreated,
    kReplayed,  // the request id created `existing` before
    kConflict,  // the request id was used for a different subscription
    kGone,      // the subscription the request id created was deleted
    kLimit,     // the owner has `max_per_owner` subscriptions
  };
  struct CreateResult {
    CreateOutcome outcome = CreateOutcome::kCreated;
    StoredSubscription existing;  // kReplayed only
  };
  virtual void CreateSubscription(const NewSubscription& request, Done<CreateResult> done) = 0;

  // The owner's subscriptions, in no particular order (secrets left empty).
  virtual void ListSubscriptions(int shard, const std::string& owner,
                                 Done<std::vector<StoredSubscription>> done) = 0;

  enum class DeleteOutcome { kDeleted, kAbsent, kForeign };
  virtual void DeleteSubscription(int shard, const std::string& owner, const std::string& id,
                                  Done<DeleteOutcome> done) = 0;

  // Replaces the signing secret of `owner`'s subscription `id`; the previous one stays
  // valid until `previous_expire_ms`. Nullopt: no such subscription of the owner.
  struct RotateRequest {
    int shard = 0;
    std::string id;
    std::string owner;
    std::string new_secret;
    int64_t now_ms = 0;
    int64_t previous_expire_ms = 0;
  };
  virtual void RotateSecret(const RotateRequest& request,
                            Done<std::optional<StoredSubscription>> done) = 0;

  // --- dead letters (the subscription owner's shard) ---

  struct DeadLetterRecord {
    std::string id;  // "<subscription>/<notification id>"
    int64_t dead_ms = 0;
    std::string subscription_id, event_id, request_id;
    std::string recipient, recipient_state;
    int attempts = 0;
    std::string last_outcome;
  };
  // The dead letters at positions [offset, offset + count) of a shard's list (oldest
  // first), those of `owner` only unless it is "". `examined` is how many positions were
  // looked at (fewer than `count`: the shard's list ended).
  struct DeadLetterPage {
    int64_t examined = 0;
    std::vector<DeadLetterRecord> dead_letters;
  };
  virtual void ListDeadLetters(int shard, int64_t offset, int count, const std::string& owner,
                               Done<DeadLetterPage> done) = 0;
  // Queues a dead letter for delivery again, now, with its attempts reset. False: no such
  // dead letter (of `owner`, unless it is "").
  virtual void RedriveDeadLetter(int shard, const std::string& id, int64_t now_ms,
                                 const std::string& owner, Done<bool> done) = 0;
};

// A store error as the RPCs answer it: UNAVAILABLE ("store: ..." unless it already was).
inline absl::Status StoreStatus(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kUnavailable) return s;
  return absl::UnavailableError(absl::StrCat("store: ", s.message()));
}

}  // namespace rogatory::notification
