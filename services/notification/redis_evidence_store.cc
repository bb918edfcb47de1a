// RedisNotificationStore: delivery evidence (a request's shard).

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "evidence.h"
#include "notification_keys.h"
#include "redis_notification_store.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::notification {
namespace {

using common::LuaScript;
using common::RedisReply;

// Records retrieval in a request shard. KEYS: retrieval timers. ARGV: now ms,
// recipient, key prefix, evidence retention ms, event ids... Returns how many
// were newly retrieved.
const LuaScript& RetrievedScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local n = 0
for i = 5, #ARGV do
  local k = ARGV[3] .. 'ev:' .. ARGV[i]
  if redis.call('EXISTS', k) == 1 and
     redis.call('HSETNX', k, '3|' .. ARGV[2] .. '|', ARGV[1]) == 1 then
    redis.call('PEXPIRE', k, ARGV[4])
    n = n + 1
  end
  redis.call('ZREM', KEYS[1], ARGV[i] .. '|' .. ARGV[2])
end
return n
)lua");
  return *s;
}

// KEYS: request events (or a placeholder). ARGV: prefix, mode ('r' request |
// 'e' event), id, limit. Returns {} if unknown, else {request id, iss, exe,
// cen, tra, ntf, then event id, field, value triples}.
const LuaScript& StatusScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local eids, rq
if ARGV[2] == 'r' then
  rq = ARGV[3]
  eids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)
  if #eids == 0 then return {} end
else
  rq = redis.call('HGET', ARGV[1] .. 'ev:' .. ARGV[3], 'rq')
  if not rq then return {} end
  eids = {ARGV[3]}
end
local p = redis.call('HMGET', ARGV[1] .. 'parties:' .. rq, 'iss', 'exe', 'cen', 'tra', 'ntf')
local out = {rq, p[1] or '', p[2] or '', p[3] or '', p[4] or '', p[5] or ''}
for _, e in ipairs(eids) do
  local h = redis.call('HGETALL', ARGV[1] .. 'ev:' .. e)
  for i = 1, #h, 2 do
    if h[i] ~= 'pb' and h[i] ~= 'rq' then
      out[#out + 1] = e
      out[#out + 1] = h[i]
      out[#out + 1] = h[i + 1]
    end
  end
end
return out
)lua");
  return *s;
}

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  return absl::SimpleAtoi(s, &v) ? v : 0;
}

// Reads StatusScript's reply.
absl::StatusOr<std::optional<NotificationStore::RequestEvidence>> ParseEvidence(
    absl::StatusOr<RedisReply> reply) {
  if (!reply.ok()) return reply.status();
  auto e = common::ReplyStrings(*reply, "delivery evidence");
  if (!e.ok()) return e.status();
  if (e->size() < 6) return std::optional<NotificationStore::RequestEvidence>();
  NotificationStore::RequestEvidence out;
  out.request_id = (*e)[0];
  out.issuing = (*e)[1];
  out.executing = (*e)[2];
  out.central = (*e)[3];
  out.translator = (*e)[4];
  out.notified = (*e)[5];
  for (size_t i = 6; i + 2 < e->size(); i += 3) {
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

}  // namespace

void RedisNotificationStore::RecordRetrieved(int shard, const std::string& recipient,
                                             const std::vector<std::string>& event_ids,
                                             absl::Time now, absl::Duration retention,
                                             Done<int> done) {
  std::vector<std::string> args = {absl::StrCat(absl::ToUnixMillis(now)), recipient, Keys::P(shard),
                                   absl::StrCat(absl::ToInt64Milliseconds(retention))};
  args.insert(args.end(), event_ids.begin(), event_ids.end());
  redis_.Eval(RetrievedScript(), {Keys::RetrievalDue(shard)}, std::move(args),
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

void RedisNotificationStore::ReadRequestEvidence(int shard, const std::string& request_id,
                                                 int max_events,
                                                 Done<std::optional<RequestEvidence>> done) {
  redis_.Eval(StatusScript(), {Keys::RequestEvents(shard, request_id)},
              {Keys::P(shard), "r", request_id, absl::StrCat(max_events)},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                done(ParseEvidence(std::move(reply)));
              });
}

void RedisNotificationStore::ReadEventEvidence(int shard, const std::string& event_id,
                                               Done<std::optional<RequestEvidence>> done) {
  redis_.Eval(StatusScript(), {Keys::Evidence(shard, event_id)},
              {Keys::P(shard), "e", event_id, "1"},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                done(ParseEvidence(std::move(reply)));
              });
}

}  // namespace rogatory::notification
