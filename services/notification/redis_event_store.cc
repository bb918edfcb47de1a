// RedisNotificationStore: receiving events (the request's shard): lua/event_receive.lua and
// lua/event_erase.lua. Both touch evidence keys named by data they read (the catch-up list,
// the request's events): the caller passes what it last read, with those keys, and the
// script answers 'retry' with the data as it is when it differs (nothing written), so a
// second attempt passes the right keys. The first attempt passes nothing: most events add no
// party, so they cost one round trip as before.

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

// After this many answers of 'retry' (the data changed under each attempt), UNAVAILABLE:
// the relay delivers the event again later.
constexpr int kAttempts = 5;

const LuaScript& ReceiveScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kEventReceive));
  return *s;
}
const LuaScript& EraseScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kEventErase));
  return *s;
}

// The event id of a catch-up item "<deadline id>|<event id>|<type>" ("" if it has no such
// shape: the script then skips it).
std::string CatchUpEventId(const std::string& item) {
  const size_t first = item.find('|');
  if (first == std::string::npos) return "";
  const size_t second = item.find('|', first + 1);
  if (second == std::string::npos) return "";
  return item.substr(first + 1, second - first - 1);
}

// {'retry', items...}: the items; nullopt for any other answer.
std::optional<std::vector<std::string>> RetryItems(const std::vector<std::string>& answer) {
  if (answer.empty() || answer[0] != "retry") return std::nullopt;
  return std::vector<std::string>(answer.begin() + 1, answer.end());
}

}  // namespace

void RedisNotificationStore::ReceiveEvent(const ReceivedEvent& event, Done<ReceiveResult> done) {
  RunReceive(event, {}, kAttempts, std::move(done));
}

void RedisNotificationStore::RunReceive(const ReceivedEvent& e, std::vector<std::string> catch_up,
                                        int attempts_left, Done<ReceiveResult> done) {
  std::vector<std::string> keys = {e.dedupe.seen_key,
                                   Keys::Parties(e.shard, e.request_id),
                                   Keys::Evidence(e.shard, e.event_id),
                                   Keys::RequestEvents(e.shard, e.request_id),
                                   Keys::RetrievalDue(e.shard),
                                   Keys::Fanout(e.shard),
                                   Keys::CatchUp(e.shard, e.request_id)};
  for (const std::string& item : catch_up) {
    keys.push_back(Keys::Evidence(e.shard, CatchUpEventId(item)));
  }
  std::vector<std::string> args = {e.dedupe.retention_ms,
                                   e.event,
                                   e.event_id,
                                   absl::StrCat(e.now_ms),
                                   absl::StrCat(absl::ToInt64Milliseconds(e.evidence_retention)),
                                   absl::StrCat(e.due_ms),
                                   absl::StrCat(e.instrument),
                                   e.request_id,
                                   absl::StrJoin(e.extra_recipients, ","),
                                   e.tell_translator ? "1" : "0",
                                   absl::StrCat(e.type),
                                   e.catch_up_action,
                                   e.deadline_id,
                                   absl::StrCat(e.catch_up_limit),
                                   absl::StrCat(catch_up.size())};
  for (const std::string& item : catch_up) args.push_back(item);
  for (const auto& [field, value] : e.party_updates) {
    args.push_back(field);
    args.push_back(value);
  }
  redis_.Eval(
      ReceiveScript(), std::move(keys), std::move(args),
      [this, e, attempts_left, done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        constexpr char kWhat[] = "event receive";
        auto elements = common::ReplyArray(*reply, kWhat);
        if (!elements.ok()) return done(elements.status());
        if ((*elements)->empty()) return done(absl::InternalError("event receive: no answer"));
        auto outcome = common::ReplyString((**elements)[0], kWhat);
        if (!outcome.ok()) return done(outcome.status());
        if (*outcome == "duplicate") return done(ReceiveResult{true, 0, 0});
        if (*outcome == "retry") {
          auto items = common::ReplyStrings(*reply, kWhat);
          if (!items.ok()) return done(items.status());
          if (attempts_left <= 1) {
            return done(absl::UnavailableError("event receive: the catch-up list kept changing"));
          }
          return RunReceive(e, *RetryItems(*items), attempts_left - 1, std::move(done));
        }
        if (*outcome != "ok" || (*elements)->size() < 3) {
          return done(absl::InternalError("event receive: Redis answered an unexpected array"));
        }
        auto recipients = common::ReplyInteger((**elements)[1], kWhat);
        auto caught = common::ReplyInteger((**elements)[2], kWhat);
        if (!recipients.ok()) return done(recipients.status());
        if (!caught.ok()) return done(caught.status());
        if (*recipients > 0 || *caught > 0) {
          // The fan-out outbox has new entries: every replica's fan-out wakes (this process's
          // own is woken by the handler). Not waited for; a lost message waits for the
          // fan-out's safety net.
          redis_.Command(
              {"PUBLISH", Keys::FanoutAppendedChannel(), absl::StrCat(e.shard, " ", publisher_id_)},
              [](absl::StatusOr<RedisReply>) {});
        }
        done(ReceiveResult{false, static_cast<int>(*recipients), static_cast<int>(*caught)});
      });
}

void RedisNotificationStore::EraseRequest(int shard, const std::string& request_id,
                                          const common::Dedupe& dedupe, Done<int> done) {
  RunErase(shard, request_id, dedupe, {}, kAttempts, std::move(done));
}

void RedisNotificationStore::RunErase(int shard, const std::string& request_id,
                                      const common::Dedupe& dedupe,
                                      std::vector<std::string> event_ids, int attempts_left,
                                      Done<int> done) {
  std::vector<std::string> keys = {dedupe.seen_key, Keys::RequestEvents(shard, request_id),
                                   Keys::RetrievalDue(shard), Keys::CatchUp(shard, request_id)};
  std::vector<std::string> args = {dedupe.retention_ms};
  for (const std::string& id : event_ids) {
    keys.push_back(Keys::Evidence(shard, id));
    args.push_back(id);
  }
  redis_.Eval(
      EraseScript(), std::move(keys), std::move(args),
      [this, shard, request_id, dedupe, attempts_left,
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        constexpr char kWhat[] = "request erase";
        auto elements = common::ReplyArray(*reply, kWhat);
        if (!elements.ok()) return done(elements.status());
        if ((*elements)->empty()) return done(absl::InternalError("request erase: no answer"));
        auto outcome = common::ReplyString((**elements)[0], kWhat);
        if (!outcome.ok()) return done(outcome.status());
        if (*outcome == "duplicate") return done(-1);
        if (*outcome == "retry") {
          auto ids = common::ReplyStrings(*reply, kWhat);
          if (!ids.ok()) return done(ids.status());
          if (attempts_left <= 1) {
            return done(
                absl::UnavailableError("request erase: the request's events kept changing"));
          }
          return RunErase(shard, request_id, dedupe, *RetryItems(*ids), attempts_left - 1,
                          std::move(done));
        }
        if (*outcome != "erased" || (*elements)->size() < 2) {
          return done(absl::InternalError("request erase: Redis answered an unexpected array"));
        }
        auto n = common::ReplyInteger((**elements)[1], kWhat);
        if (!n.ok()) return done(n.status());
        done(static_cast<int>(*n));
      });
}

}  // namespace rogatory::notification
