// RedisNotificationStore: webhook subscriptions and dead letters (the owner's shard).

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "notification_keys.h"
#include "redis_notification_store.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::notification {
namespace {

using common::LuaScript;
using common::RedisReply;

// KEYS: idempotency record, owner's subscriptions, subscription.
// ARGV: [1] fingerprint ('' none), [2] id, [3] uri, [4] fi, [5] ft, [6] fs, [7]
// owner,
//       [8] owner state, [9] now ms, [10] secret, [11] idempotency ttl ms, [12]
//       max, [13] key prefix.
const LuaScript& CreateSubscriptionScript() {
  static const LuaScript* s = new LuaScript(R"lua(
if ARGV[1] ~= '' then
  local e = redis.call('HMGET', KEYS[1], 'fp', 'id')
  if e[1] then
    if e[1] ~= ARGV[1] then return {'conflict'} end
    local s = redis.call('HMGET', ARGV[13] .. 'sub:' .. e[2], 'uri', 'fi', 'ft', 'fs', 'ct',
                         'sec', 'rot')
    if not s[1] then return {'gone'} end
    return {'replayed', e[2], s[1], s[2], s[3], s[4], s[5], s[6], s[7] or ''}
  end
end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[12]) then return {'limit'} end
redis.call('HSET', KEYS[3], 'owner', ARGV[7], 'ost', ARGV[8], 'uri', ARGV[3], 'fi', ARGV[4],
           'ft', ARGV[5], 'fs', ARGV[6], 'ct', ARGV[9], 'sec', ARGV[10])
redis.call('SADD', KEYS[2], ARGV[2])
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'id', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[11])
end
return {'created'}
)lua");
  return *s;
}

// KEYS: owner's subscriptions. ARGV: prefix. Returns {id, uri, fi, ft, fs, ct,
// rot, ...}.
const LuaScript& ListSubscriptionsScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local h = redis.call('HMGET', ARGV[1] .. 'sub:' .. id, 'uri', 'fi', 'ft', 'fs', 'ct', 'rot')
  if h[1] then
    out[#out + 1] = id
    for k = 1, 6 do out[#out + 1] = h[k] or '' end
  end
end
return out
)lua");
  return *s;
}

// KEYS: owner's subscriptions, subscription. ARGV: id, caller.
const LuaScript& DeleteSubscriptionScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local o = redis.call('HGET', KEYS[2], 'owner')
if not o then return 'absent' end
if o ~= ARGV[2] then return 'foreign' end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[1], ARGV[1])
return 'deleted'
)lua");
  return *s;
}

// KEYS: subscription. ARGV: caller, new secret, now ms, previous secret's
// expiry ms.
const LuaScript& RotateScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local h = redis.call('HMGET', KEYS[1], 'owner', 'sec', 'uri', 'fi', 'ft', 'fs', 'ct')
if not h[1] or h[1] ~= ARGV[1] then return {'absent'} end
redis.call('HSET', KEYS[1], 'osec', h[2], 'oexp', ARGV[4], 'sec', ARGV[2], 'rot', ARGV[3])
return {'ok', h[3], h[4] or '', h[5] or '', h[6] or '', h[7] or ''}
)lua");
  return *s;
}

// KEYS: dead letters. ARGV: offset, count, prefix, owner filter ('' all).
// Returns {examined, then per match: id, dead ms, sub, eid, rq, to, tost, att,
// last}.
const LuaScript& ListDeadScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local first = tonumber(ARGV[1])
local m = redis.call('ZRANGE', KEYS[1], first, first + tonumber(ARGV[2]) - 1, 'WITHSCORES')
local out = {#m / 2}
for i = 1, #m, 2 do
  local j = redis.call('HMGET', ARGV[3] .. 'whjob:' .. m[i], 'sub', 'eid', 'rq', 'to', 'tost',
                       'att', 'last')
  if ARGV[4] == '' or j[4] == ARGV[4] then
    out[#out + 1] = m[i]
    out[#out + 1] = m[i + 1]
    for k = 1, 7 do out[#out + 1] = j[k] or '' end
  end
end
return out
)lua");
  return *s;
}

// KEYS: dead letters, webhook queue, job. ARGV: member, now ms, owner filter
// ('' any).
const LuaScript& RedriveScript() {
  static const LuaScript* s = new LuaScript(R"lua(
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 'absent' end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[3], 'to') ~= ARGV[3] then return 'absent' end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], 'att', 0)
redis.call('HDEL', KEYS[3], 'dead')
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 'ok'
)lua");
  return *s;
}

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  return absl::SimpleAtoi(s, &v) ? v : 0;
}

// A subscription from uri, fi, ft, fs, ct, rot at `at` in a flat reply.
NotificationStore::StoredSubscription SubscriptionAt(const std::vector<std::string>& e, size_t at,
                                                     std::string id) {
  NotificationStore::StoredSubscription s;
  s.id = std::move(id);
  s.endpoint_uri = e[at];
  s.filter = EncodedFilter{e[at + 1], e[at + 2], e[at + 3]};
  s.create_ms = ToInt(e[at + 4]);
  s.rotate_ms = ToInt(e[at + 5]);
  return s;
}

}  // namespace

void RedisNotificationStore::CreateSubscription(const NewSubscription& r, Done<CreateResult> done) {
  const int shard = r.shard;
  redis_.Eval(CreateSubscriptionScript(),
              {Keys::Idempotency(shard, r.owner, r.request_id),
               Keys::OwnerSubscriptions(shard, r.owner), Keys::Subscription(shard, r.id)},
              {r.fingerprint, r.id, r.endpoint_uri, r.filter.instruments, r.filter.types,
               r.filter.states, r.owner, r.owner_state, absl::StrCat(r.create_ms), r.secret,
               absl::StrCat(absl::ToInt64Milliseconds(r.idempotency_ttl)),
               absl::StrCat(r.max_per_owner), Keys::P(shard)},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto e = common::ReplyStrings(*reply, "subscription create");
                if (!e.ok()) return done(e.status());
                const std::string outcome = e->empty() ? "" : (*e)[0];
                CreateResult result;
                if (outcome == "conflict") {
                  result.outcome = CreateOutcome::kConflict;
                } else if (outcome == "gone") {
                  result.outcome = CreateOutcome::kGone;
                } else if (outcome == "limit") {
                  result.outcome = CreateOutcome::kLimit;
                } else if (outcome == "replayed" && e->size() >= 9) {
                  result.outcome = CreateOutcome::kReplayed;
                  // {'replayed', id, uri, fi, ft, fs, ct, sec, rot}
                  std::vector<std::string> row = {(*e)[2], (*e)[3], (*e)[4],
                                                  (*e)[5], (*e)[6], (*e)[8]};
                  result.existing = SubscriptionAt(row, 0, (*e)[1]);
                  result.existing.secret = (*e)[7];
                }
                done(std::move(result));
              });
}

void RedisNotificationStore::ListSubscriptions(int shard, const std::string& owner,
                                               Done<std::vector<StoredSubscription>> done) {
  redis_.Eval(ListSubscriptionsScript(), {Keys::OwnerSubscriptions(shard, owner)}, {Keys::P(shard)},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto e = common::ReplyStrings(*reply, "subscription list");
                if (!e.ok()) return done(e.status());
                std::vector<StoredSubscription> out;
                for (size_t i = 0; i + 6 < e->size(); i += 7) {
                  out.push_back(SubscriptionAt(*e, i + 1, (*e)[i]));
                }
                done(std::move(out));
              });
}

void RedisNotificationStore::DeleteSubscription(int shard, const std::string& owner,
                                                const std::string& id, Done<DeleteOutcome> done) {
  redis_.Eval(DeleteSubscriptionScript(),
              {Keys::OwnerSubscriptions(shard, owner), Keys::Subscription(shard, id)}, {id, owner},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto outcome = common::ReplyString(*reply, "subscription delete");
                if (!outcome.ok()) return done(outcome.status());
                if (*outcome == "foreign") return done(DeleteOutcome::kForeign);
                if (*outcome == "deleted") return done(DeleteOutcome::kDeleted);
                done(DeleteOutcome::kAbsent);
              });
}

void RedisNotificationStore::RotateSecret(const RotateRequest& r,
                                          Done<std::optional<StoredSubscription>> done) {
  redis_.Eval(RotateScript(), {Keys::Subscription(r.shard, r.id)},
              {r.owner, r.new_secret, absl::StrCat(r.now_ms), absl::StrCat(r.previous_expire_ms)},
              [id = r.id, secret = r.new_secret, now_ms = r.now_ms,
               done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto e = common::ReplyStrings(*reply, "subscription secret rotation");
                if (!e.ok()) return done(e.status());
                if (e->size() < 6 || (*e)[0] != "ok") {
                  return done(std::optional<StoredSubscription>());
                }
                // {'ok', uri, fi, ft, fs, ct}
                std::vector<std::string> row = {(*e)[1], (*e)[2], (*e)[3],
                                                (*e)[4], (*e)[5], absl::StrCat(now_ms)};
                StoredSubscription s = SubscriptionAt(row, 0, id);
                s.secret = secret;
                done(std::optional<StoredSubscription>(std::move(s)));
              });
}

void RedisNotificationStore::ListDeadLetters(int shard, int64_t offset, int count,
                                             const std::string& owner, Done<DeadLetterPage> done) {
  redis_.Eval(ListDeadScript(), {Keys::DeadLetters(shard)},
              {absl::StrCat(offset), absl::StrCat(count), Keys::P(shard), owner},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto elements = common::ReplyArray(*reply, "dead letter list");
                if (!elements.ok()) return done(elements.status());
                const std::vector<RedisReply>& e = **elements;
                DeadLetterPage page;
                page.examined = e.empty() ? 0 : e[0].integer;
                for (size_t i = 1; i + 8 < e.size(); i += 9) {
                  DeadLetterRecord d;
                  d.id = e[i].str;
                  d.dead_ms = ToInt(e[i + 1].str);
                  d.subscription_id = e[i + 2].str;
                  d.event_id = e[i + 3].str;
                  d.request_id = e[i + 4].str;
                  d.recipient = e[i + 5].str;
                  d.recipient_state = e[i + 6].str;
                  d.attempts = static_cast<int>(ToInt(e[i + 7].str));
                  d.last_outcome = e[i + 8].str;
                  page.dead_letters.push_back(std::move(d));
                }
                done(std::move(page));
              });
}

void RedisNotificationStore::RedriveDeadLetter(int shard, const std::string& id, int64_t now_ms,
                                               const std::string& owner, Done<bool> done) {
  redis_.Eval(RedriveScript(),
              {Keys::DeadLetters(shard), Keys::WebhookDue(shard), Keys::WebhookJob(shard, id)},
              {id, absl::StrCat(now_ms), owner},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto outcome = common::ReplyString(*reply, "dead letter redrive");
                if (!outcome.ok()) return done(outcome.status());
                done(*outcome == "ok");
              });
}

}  // namespace rogatory::notification
