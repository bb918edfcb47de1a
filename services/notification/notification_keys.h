#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "rogatory/common/ids.h"

namespace rogatory::notification {

// Every key of the notification service, under rg:{sN}:ntf:. Two kinds of
// shard:
// - the request's shard (from the request id) holds what one received event
// changes: the
//   party record, the delivery evidence, the retrieval timers and the fan-out
//   outbox;
// - the authority's shard (ShardFor(authority id)) holds what belongs to one
// authority:
//   its inbox, its subscriptions, their webhook queue and dead letters.
struct Keys {
  static std::string P(int shard) { return absl::StrCat(common::Sharding::Prefix(shard), "ntf:"); }

  // --- request shard ---
  // hash: the request's parties as learned from events (iss, iss_st, exe,
  // exe_st, cen, cen_st, tra, tra_st, inst, req_st, ntf, ntf_st: the notified authority).
  static std::string Parties(int shard, absl::string_view request_id) {
    return absl::StrCat(P(shard), "parties:", request_id);
  }
  // hash: evidence of one event: "<stage>|<recipient>|<subscription>" -> ms;
  // "pb", "rq".
  static std::string Evidence(int shard, absl::string_view event_id) {
    return absl::StrCat(P(shard), "ev:", event_id);
  }
  // zset: event ids of a request by accept time.
  static std::string RequestEvents(int shard, absl::string_view request_id) {
    return absl::StrCat(P(shard), "rqev:", request_id);
  }
  // list: the events a party joining the request later must still receive (catch-up), in
  // the order received: "<deadline_id>|<event_id>|<type>" for each event of a deadline still
  // running (its start and its changes); the payload is the event's evidence "pb". Bounded
  // (NotificationEventHandler::kCatchUpLimit).
  static std::string CatchUp(int shard, absl::string_view request_id) {
    return absl::StrCat(P(shard), "catchup:", request_id);
  }
  // zset: retrieval timers "<event_id>|<recipient>" by due ms.
  static std::string RetrievalDue(int shard) { return absl::StrCat(P(shard), "due"); }
  // stream: fan-out outbox, entries {ev, to, acc, kind, about}; consumer group
  // "fanout".
  static std::string Fanout(int shard) { return absl::StrCat(P(shard), "fanout"); }

  // Pub/sub channel (not a key: channels live outside the keyspace and its hash slots) on
  // which inbox_deliver.lua publishes "<entry id> <inbox key>" for every append, so Subscribe
  // streams on every replica wake (InboxAppendListener). One channel for all inboxes: its name
  // holds no authority; the inbox key is in the message only.
  static std::string InboxAppendedChannel() { return "rg:ntf:inbox-appended"; }
  // Pub/sub channel on which every commit that appends to a shard's fan-out outbox (an event
  // received: RedisNotificationStore::ReceiveEvent) announces "<shard> <publisher id>", so the
  // fan-out of every replica wakes for it (FanoutWorker; issue 19). No personal data.
  static std::string FanoutAppendedChannel() { return "rg:ntf:fanout-appended"; }

  // --- authority shard ---
  static std::string Inbox(int shard, absl::string_view authority) {
    return absl::StrCat(P(shard), "inbox:", authority);
  }
  // string: id of the newest entry trimmed from the inbox (cursors older are
  // OUT_OF_RANGE).
  static std::string InboxFloor(int shard, absl::string_view authority) {
    return absl::StrCat(P(shard), "inbox:", authority, ":floor");
  }
  // string: the inbox cursor up to which retrieval was recorded.
  static std::string InboxAcked(int shard, absl::string_view authority) {
    return absl::StrCat(P(shard), "inbox:", authority, ":acked");
  }
  // string, TTL: this notification (event id + kind) is already in the inbox.
  static std::string InboxMarker(int shard, absl::string_view authority,
                                 absl::string_view notification_id) {
    return absl::StrCat(P(shard), "inbox:", authority, ":had:", notification_id);
  }
  // set: ids of an owner's subscriptions.
  static std::string OwnerSubscriptions(int shard, absl::string_view owner) {
    return absl::StrCat(P(shard), "subs:", owner);
  }
  // hash: one subscription.
  static std::string Subscription(int shard, absl::string_view id) {
    return absl::StrCat(P(shard), "sub:", id);
  }
  // hash, TTL: CreateSubscription idempotency record (fp, id).
  static std::string Idempotency(int shard, absl::string_view owner, absl::string_view request_id) {
    return absl::StrCat(P(shard), "idem:", owner, ":", request_id);
  }
  // zset: webhook jobs "<subscription>/<notification id>" by due ms (a claim
  // pushes it out).
  static std::string WebhookDue(int shard) { return absl::StrCat(P(shard), "whdue"); }
  // zset: dead webhook jobs by dead-letter ms.
  static std::string DeadLetters(int shard) { return absl::StrCat(P(shard), "dlq"); }
  // hash: one webhook job (sub, ev, att, acc, rq, eid, to, tost, last).
  static std::string WebhookJob(int shard, absl::string_view job) {
    return absl::StrCat(P(shard), "whjob:", job);
  }
};

}  // namespace rogatory::notification
