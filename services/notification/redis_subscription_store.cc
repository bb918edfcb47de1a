// RedisNotificationStore: webhook subscriptions and dead letters (the owner's shard).

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "notification_keys.h"
#include "notification_lua_scripts.h"
#include "redis_notification_store.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::notification {
namespace {

using common::LuaScript;
using common::RedisReply;

const LuaScript& CreateScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kSubscriptionCreate));
  return *s;
}
const LuaScript& ReadScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kSubscriptionRead));
  return *s;
}
const LuaScript& DeleteScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kSubscriptionDelete));
  return *s;
}
const LuaScript& RotateScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kSubscriptionRotateSecret));
  return *s;
}
const LuaScript& DeadReadScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kDeadLetterRead));
  return *s;
}
const LuaScript& RedriveScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kDeadLetterRedrive));
  return *s;
}

// A subscription created by the same request id is read again at most this many times when
// its idempotency record changes between the read and the script.
constexpr int kCreateAttempts = 3;

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

// With a request id, two round trips: the idempotency record (which names the subscription
// it created, a key the script must receive), then the script, which re-checks the record
// and answers 'retry' if it changed. Without, one.
void RedisNotificationStore::CreateSubscription(const NewSubscription& r, Done<CreateResult> done) {
  if (r.fingerprint.empty()) return RunCreate(r, "", kCreateAttempts, std::move(done));
  redis_.Command({"HGET", Keys::Idempotency(r.shard, r.owner, r.request_id), "id"},
                 [this, r, done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
                   if (!reply.ok()) return done(reply.status());
                   auto id = common::ReplyOptionalString(*reply, "subscription idempotency");
                   if (!id.ok()) return done(id.status());
                   RunCreate(r, id->value_or(""), kCreateAttempts, std::move(done));
                 });
}

void RedisNotificationStore::RunCreate(const NewSubscription& r, const std::string& existing_id,
                                       int attempts_left, Done<CreateResult> done) {
  const int shard = r.shard;
  std::vector<std::string> keys = {Keys::Idempotency(shard, r.owner, r.request_id),
                                   Keys::OwnerSubscriptions(shard, r.owner),
                                   Keys::Subscription(shard, r.id)};
  if (!existing_id.empty()) keys.push_back(Keys::Subscription(shard, existing_id));
  redis_.Eval(
      CreateScript(), std::move(keys),
      {r.fingerprint, r.id, r.endpoint_uri, r.filter.instruments, r.filter.types, r.filter.states,
       r.owner, r.owner_state, absl::StrCat(r.create_ms), r.secret,
       absl::StrCat(absl::ToInt64Milliseconds(r.idempotency_ttl)), absl::StrCat(r.max_per_owner),
       existing_id},
      [this, r, attempts_left, done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        auto e = common::ReplyStrings(*reply, "subscription create");
        if (!e.ok()) return done(e.status());
        const std::string outcome = e->empty() ? "" : (*e)[0];
        if (outcome == "retry") {
          if (attempts_left <= 1) {
            return done(absl::AbortedError("the idempotency record kept changing; retry"));
          }
          // Read the record again; the script re-checks it.
          return redis_.Command(
              {"HGET", Keys::Idempotency(r.shard, r.owner, r.request_id), "id"},
              [this, r, attempts_left,
               done = std::move(done)](absl::StatusOr<RedisReply> again) mutable {
                if (!again.ok()) return done(again.status());
                auto id = common::ReplyOptionalString(*again, "subscription idempotency");
                if (!id.ok()) return done(id.status());
                RunCreate(r, id->value_or(""), attempts_left - 1, std::move(done));
              });
        }
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
          std::vector<std::string> row = {(*e)[2], (*e)[3], (*e)[4], (*e)[5], (*e)[6], (*e)[8]};
          result.existing = SubscriptionAt(row, 0, (*e)[1]);
          result.existing.secret = (*e)[7];
        }
        done(std::move(result));
      });
}

// Two round trips when the owner has subscriptions: their ids, then the subscriptions.
void RedisNotificationStore::ListSubscriptions(int shard, const std::string& owner,
                                               Done<std::vector<StoredSubscription>> done) {
  redis_.Command({"SMEMBERS", Keys::OwnerSubscriptions(shard, owner)},
                 [this, shard, done = std::move(done)](absl::StatusOr<RedisReply> members) mutable {
                   if (!members.ok()) return done(members.status());
                   auto ids = common::ReplyStrings(*members, "owner subscriptions");
                   if (!ids.ok()) return done(ids.status());
                   if (ids->empty()) return done(std::vector<StoredSubscription>());
                   std::vector<std::string> keys;
                   for (const std::string& id : *ids) keys.push_back(Keys::Subscription(shard, id));
                   redis_.Eval(ReadScript(), std::move(keys), *ids,
                               [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                                 if (!reply.ok()) return done(reply.status());
                                 auto e = common::ReplyStrings(*reply, "subscription read");
                                 if (!e.ok()) return done(e.status());
                                 std::vector<StoredSubscription> out;
                                 for (size_t i = 0; i + 6 < e->size(); i += 7) {
                                   out.push_back(SubscriptionAt(*e, i + 1, (*e)[i]));
                                 }
                                 done(std::move(out));
                               });
                 });
}

void RedisNotificationStore::DeleteSubscription(int shard, const std::string& owner,
                                                const std::string& id, Done<DeleteOutcome> done) {
  redis_.Eval(DeleteScript(),
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

// Two round trips when the page has dead letters: the shard's list, then their jobs.
void RedisNotificationStore::ListDeadLetters(int shard, int64_t offset, int count,
                                             const std::string& owner, Done<DeadLetterPage> done) {
  redis_.Command(
      {"ZRANGE", Keys::DeadLetters(shard), absl::StrCat(offset), absl::StrCat(offset + count - 1),
       "WITHSCORES"},
      [this, shard, owner, done = std::move(done)](absl::StatusOr<RedisReply> listed) mutable {
        if (!listed.ok()) return done(listed.status());
        auto members = common::ReplyStrings(*listed, "dead letters");
        if (!members.ok()) return done(members.status());
        if (members->empty()) return done(DeadLetterPage{});
        std::vector<std::string> keys;
        for (size_t i = 0; i + 1 < members->size(); i += 2) {
          keys.push_back(Keys::WebhookJob(shard, (*members)[i]));
        }
        redis_.Eval(DeadReadScript(), std::move(keys), {},
                    [members = *std::move(members), owner,
                     done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                      if (!reply.ok()) return done(reply.status());
                      auto jobs = common::ReplyStrings(*reply, "dead letter read");
                      if (!jobs.ok()) return done(jobs.status());
                      DeadLetterPage page;
                      page.examined = static_cast<int64_t>(members.size() / 2);
                      for (size_t i = 0; i + 1 < members.size() && (i / 2 + 1) * 7 <= jobs->size();
                           i += 2) {
                        const size_t j = i / 2 * 7;  // sub, eid, rq, to, tost, att, last
                        if (!owner.empty() && (*jobs)[j + 3] != owner) continue;
                        DeadLetterRecord d;
                        d.id = members[i];
                        d.dead_ms = ToInt(members[i + 1]);
                        d.subscription_id = (*jobs)[j];
                        d.event_id = (*jobs)[j + 1];
                        d.request_id = (*jobs)[j + 2];
                        d.recipient = (*jobs)[j + 3];
                        d.recipient_state = (*jobs)[j + 4];
                        d.attempts = static_cast<int>(ToInt((*jobs)[j + 5]));
                        d.last_outcome = (*jobs)[j + 6];
                        page.dead_letters.push_back(std::move(d));
                      }
                      done(std::move(page));
                    });
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
