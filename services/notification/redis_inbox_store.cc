// RedisNotificationStore: inboxes and their acknowledgement pointers (an authority's shard).

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "notification_keys.h"
#include "notification_lua_scripts.h"
#include "redis_notification_store.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::notification {
namespace {

using common::LuaScript;
using common::RedisReply;

const LuaScript& OpenScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kInboxOpen));
  return *s;
}
const LuaScript& ReadScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kInboxRead));
  return *s;
}
const LuaScript& AckReadScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kInboxUnacked));
  return *s;
}
const LuaScript& AckAdvanceScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kInboxAckAdvance));
  return *s;
}
const LuaScript& DeliverScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kInboxDeliver));
  return *s;
}

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  return absl::SimpleAtoi(s, &v) ? v : 0;
}

}  // namespace

void RedisNotificationStore::OpenInbox(int shard, const std::string& authority,
                                       const std::string& min_id, int64_t max_length,
                                       Done<InboxBounds> done) {
  redis_.Eval(OpenScript(), {Keys::Inbox(shard, authority), Keys::InboxFloor(shard, authority)},
              {min_id, absl::StrCat(max_length)},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto bounds = common::ReplyStrings(*reply, "inbox open");
                if (!bounds.ok()) return done(bounds.status());
                if (bounds->size() < 2) {
                  return done(absl::InternalError("inbox open: Redis answered too few elements"));
                }
                done(InboxBounds{ParseStreamId((*bounds)[0]).value_or(StreamId{}),
                                 ParseStreamId((*bounds)[1]).value_or(StreamId{})});
              });
}

void RedisNotificationStore::ReadInbox(int shard, const std::string& authority,
                                       const StreamId& after, size_t count, Done<InboxPage> done) {
  redis_.Eval(ReadScript(), {Keys::Inbox(shard, authority), Keys::InboxFloor(shard, authority)},
              {after.ToString(), absl::StrCat(count)},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto elements = common::ReplyArray(*reply, "inbox read");
                if (!elements.ok()) return done(elements.status());
                if ((*elements)->empty()) {
                  return done(absl::InternalError("inbox read: Redis answered no floor"));
                }
                auto floor = common::ReplyString((**elements)[0], "inbox read");
                if (!floor.ok()) return done(floor.status());
                InboxPage page;
                page.floor = ParseStreamId(*floor).value_or(StreamId{});
                page.examined = (*elements)->size() - 1;
                for (size_t i = 1; i < (*elements)->size(); ++i) {
                  const RedisReply& e = (**elements)[i];
                  if (e.elements.size() < 2) continue;
                  auto id = ParseStreamId(e.elements[0].str);
                  if (!id) continue;
                  auto f = common::ReplyFields(e.elements[1], "inbox read");
                  if (!f.ok()) return done(f.status());
                  InboxEntry entry;
                  entry.cursor = e.elements[0].str;
                  entry.id = *id;
                  entry.event = (*f)["ev"];
                  entry.states = (*f)["st"];
                  entry.recipient_state = (*f)["tost"];
                  entry.accept_ms = ToInt((*f)["acc"]);
                  entry.reannouncement = (*f)["kind"] == "r";
                  page.entries.push_back(std::move(entry));
                }
                done(std::move(page));
              });
}

void RedisNotificationStore::ReadUnacked(int shard, const std::string& authority,
                                         const std::string& cursor, int max,
                                         Done<std::vector<Unacked>> done) {
  redis_.Eval(AckReadScript(), {Keys::Inbox(shard, authority), Keys::InboxAcked(shard, authority)},
              {cursor, absl::StrCat(max)},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto flat = common::ReplyStrings(*reply, "inbox unacknowledged");
                if (!flat.ok()) return done(flat.status());
                std::vector<Unacked> out;
                for (size_t i = 0; i + 2 < flat->size(); i += 3) {
                  out.push_back(Unacked{(*flat)[i], (*flat)[i + 1], (*flat)[i + 2]});
                }
                done(std::move(out));
              });
}

void RedisNotificationStore::AdvanceAcked(int shard, const std::string& authority,
                                          const std::string& cursor, Done<bool> done) {
  redis_.Eval(AckAdvanceScript(), {Keys::InboxAcked(shard, authority)}, {cursor},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto moved = common::ReplyInteger(*reply, "inbox acknowledgement");
                if (!moved.ok()) return done(moved.status());
                done(*moved == 1);
              });
}

void RedisNotificationStore::DeliverToInbox(const InboxDelivery& d, Done<DeliveryResult> done) {
  const int shard = d.shard;
  const std::string marker = Keys::InboxMarker(shard, d.recipient, d.notification_id);
  const bool waits = !d.previous_notification_id.empty();
  std::vector<std::string> keys = {
      Keys::Inbox(shard, d.recipient),
      Keys::InboxFloor(shard, d.recipient),
      marker,
      Keys::OwnerSubscriptions(shard, d.recipient),
      Keys::WebhookDue(shard),
      waits ? Keys::InboxMarker(shard, d.recipient, d.previous_notification_id) : marker};
  std::vector<std::string> args = {d.event,
                                   absl::StrCat(d.accept_ms),
                                   d.kind,
                                   absl::StrCat(d.now_ms),
                                   d.min_id,
                                   absl::StrCat(d.max_length),
                                   absl::StrCat(absl::ToInt64Milliseconds(d.marker_retention)),
                                   d.states,
                                   d.notification_id,
                                   d.request_id,
                                   d.recipient,
                                   d.recipient_state,
                                   d.event_id,
                                   waits ? "1" : "0",
                                   absl::StrJoin(d.subscription_ids, ","),
                                   Keys::InboxAppendedChannel()};
  if (d.kind != "r") {
    for (const std::string& id : d.matched) {
      keys.push_back(Keys::WebhookJob(shard, absl::StrCat(id, "/", d.notification_id)));
      args.push_back(id);
    }
  }
  redis_.Eval(DeliverScript(), std::move(keys), std::move(args),
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto answer = common::ReplyStrings(*reply, "inbox delivery");
                if (!answer.ok()) return done(answer.status());
                if (answer->empty()) {
                  return done(absl::InternalError("inbox delivery: Redis answered nothing"));
                }
                const std::string& outcome = (*answer)[0];
                DeliveryResult result;
                if (outcome == "blocked") {
                  result.outcome = DeliveryOutcome::kBlocked;
                } else if (outcome == "duplicate") {
                  result.outcome = DeliveryOutcome::kDuplicate;
                } else if (outcome == "retry") {
                  result.outcome = DeliveryOutcome::kRetry;
                  result.subscription_ids.assign(answer->begin() + 1, answer->end());
                } else if (outcome == "ok" && answer->size() >= 3) {
                  result.cursor = (*answer)[1];
                  result.jobs = static_cast<int>(ToInt((*answer)[2]));
                } else {
                  return done(absl::InternalError("inbox delivery: unexpected reply"));
                }
                done(std::move(result));
              });
}

}  // namespace rogatory::notification
