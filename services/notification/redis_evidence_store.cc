// RedisNotificationStore: delivery evidence (a request's shard).

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "evidence.h"
#include "notification_keys.h"
#include "notification_lua_scripts.h"
#include "redis_notification_store.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::notification {
namespace {

using common::LuaScript;
using common::RedisReply;

const LuaScript& RetrievedScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kEvidenceRetrieved));
  return *s;
}
const LuaScript& ReadScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kEvidenceRead));
  return *s;
}

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  return absl::SimpleAtoi(s, &v) ? v : 0;
}

// Reads evidence_read.lua's reply about `request_id`.
absl::StatusOr<std::optional<NotificationStore::RequestEvidence>> ParseEvidence(
    const std::string& request_id, absl::StatusOr<RedisReply> reply) {
  if (!reply.ok()) return reply.status();
  auto e = common::ReplyStrings(*reply, "delivery evidence");
  if (!e.ok()) return e.status();
  if (e->size() < 5) {
    return absl::InternalError("delivery evidence: Redis answered too few elements");
  }
  NotificationStore::RequestEvidence out;
  out.request_id = request_id;
  out.issuing = (*e)[0];
  out.executing = (*e)[1];
  out.central = (*e)[2];
  out.translator = (*e)[3];
  out.notified = (*e)[4];
  for (size_t i = 5; i + 2 < e->size(); i += 3) {
    std::vector<std::string> parts = absl::StrSplit((*e)[i + 1], '|');
    if (parts.size() != 3) continue;
    NotificationStore::EvidenceRecord r;
    r.event_id = (*e)[i];
    r.stage = static_cast<v1::DeliveryStage>(ToInt(parts[0]));
    r.recipient = parts[1];
    r.subscription = parts[2];
    r.record_ms = ToInt((*e)[i + 2]);
    out.records.push_back(std::move(r));
  }
  return out;
}

// Reads the evidence of `event_ids` (events of `request_id`, in `shard`) with the request's
// parties: the second round trip of both reads.
void ReadEvidence(common::RedisClient& redis, int shard, const std::string& request_id,
                  const std::vector<std::string>& event_ids,
                  NotificationStore::Done<std::optional<NotificationStore::RequestEvidence>> done) {
  std::vector<std::string> keys = {Keys::Parties(shard, request_id)};
  for (const std::string& eid : event_ids) keys.push_back(Keys::Evidence(shard, eid));
  redis.Eval(ReadScript(), std::move(keys), event_ids,
             [request_id, done = std::move(done)](absl::StatusOr<RedisReply> reply) {
               done(ParseEvidence(request_id, std::move(reply)));
             });
}

}  // namespace

void RedisNotificationStore::RecordRetrieved(int shard, const std::string& recipient,
                                             const std::vector<std::string>& event_ids,
                                             absl::Time now, absl::Duration retention,
                                             Done<int> done) {
  std::vector<std::string> keys = {Keys::RetrievalDue(shard)};
  for (const std::string& eid : event_ids) keys.push_back(Keys::Evidence(shard, eid));
  std::vector<std::string> args = {absl::StrCat(absl::ToUnixMillis(now)), recipient,
                                   absl::StrCat(absl::ToInt64Milliseconds(retention))};
  args.insert(args.end(), event_ids.begin(), event_ids.end());
  redis_.Eval(RetrievedScript(), std::move(keys), std::move(args),
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto n = common::ReplyInteger(*reply, "retrieval");
                if (!n.ok()) return done(n.status());
                done(static_cast<int>(*n));
              });
}

void RedisNotificationStore::RecordStage(int shard, const std::string& event_id,
                                         v1::DeliveryStage stage, const std::string& recipient,
                                         const std::string& subscription, absl::Time now,
                                         absl::Duration retention, Done<bool> done) {
  notification::RecordStage(redis_, shard, event_id, stage, recipient, subscription, now, retention,
                            std::move(done));
}

// Two round trips: the request's events, then their evidence with the parties (a script
// receives every key it reads, so it cannot find the events itself).
void RedisNotificationStore::ReadRequestEvidence(int shard, const std::string& request_id,
                                                 int max_events,
                                                 Done<std::optional<RequestEvidence>> done) {
  redis_.Command(
      {"ZRANGE", Keys::RequestEvents(shard, request_id), "0", absl::StrCat(max_events - 1)},
      [this, shard, request_id, done = std::move(done)](absl::StatusOr<RedisReply> reply) {
        if (!reply.ok()) return done(reply.status());
        auto event_ids = common::ReplyStrings(*reply, "request events");
        if (!event_ids.ok()) return done(event_ids.status());
        if (event_ids->empty()) return done(std::optional<RequestEvidence>());
        ReadEvidence(redis_, shard, request_id, *event_ids, std::move(done));
      });
}

// Two round trips: the event's request, then its evidence with the request's parties.
void RedisNotificationStore::ReadEventEvidence(int shard, const std::string& event_id,
                                               Done<std::optional<RequestEvidence>> done) {
  redis_.Command({"HGET", Keys::Evidence(shard, event_id), "rq"},
                 [this, shard, event_id, done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   auto request_id = common::ReplyOptionalString(*reply, "event request");
                   if (!request_id.ok()) return done(request_id.status());
                   if (!request_id->has_value()) return done(std::optional<RequestEvidence>());
                   ReadEvidence(redis_, shard, **request_id, {event_id}, std::move(done));
                 });
}

}  // namespace rogatory::notification
