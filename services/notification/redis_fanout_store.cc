// RedisNotificationStore: the fan-out outbox (lua/fanout_read.lua, lua/fanout_ack.lua) and
// the retrieval timers (lua/retrieval_timers.lua) of a request's shard.

#include <algorithm>
#include <limits>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "notification_keys.h"
#include "notification_lua_scripts.h"
#include "redis_notification_store.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::notification {
namespace {

using common::LuaScript;
using common::RedisReply;

constexpr char kGroup[] = "fanout";

const LuaScript& ReadScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kFanoutRead));
  return *s;
}
const LuaScript& AckScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kFanoutAck));
  return *s;
}
const LuaScript& TimersScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kRetrievalTimers));
  return *s;
}

// Replies of commands in flight at once, handed to `finish` when the last one is in.
template <typename Finish>
class Gather {
 public:
  Gather(size_t n, Finish finish)
      : replies_(n, absl::UnknownError("no reply")), left_(n), finish_(std::move(finish)) {}
  void Finished(size_t i, absl::StatusOr<RedisReply> reply) {
    bool last = false;
    {
      absl::MutexLock lock(&mu_);
      replies_[i] = std::move(reply);
      last = --left_ == 0;
    }
    if (last) finish_(std::move(replies_));
  }

 private:
  absl::Mutex mu_;
  std::vector<absl::StatusOr<RedisReply>> replies_;
  size_t left_ ABSL_GUARDED_BY(mu_);
  Finish finish_;
};

}  // namespace

void RedisNotificationStore::PrepareFanout(int shard, Done<bool> done) {
  redis_.Command({"XGROUP", "CREATE", Keys::Fanout(shard), kGroup, "0", "MKSTREAM"},
                 [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                   if (reply.ok() || absl::StrContains(reply.status().message(), "BUSYGROUP")) {
                     return done(true);
                   }
                   done(reply.status());
                 });
}

void RedisNotificationStore::ReadFanout(const FanoutRead& read, Done<FanoutBatch> done) {
  redis_.Eval(
      ReadScript(), {Keys::Fanout(read.shard)},
      {kGroup, read.consumer, absl::StrCat(read.count), read.own_first ? "1" : "0",
       absl::StrCat(read.claim_idle_ms)},
      [shard = read.shard, done = std::move(done)](absl::StatusOr<RedisReply> reply) {
        if (!reply.ok()) {
          if (absl::StrContains(reply.status().message(), "NOGROUP")) {
            return done(absl::FailedPreconditionError(reply.status().message()));
          }
          return done(reply.status());
        }
        constexpr char kWhat[] = "fan-out read";
        auto top = common::ReplyArray(*reply, kWhat);
        if (!top.ok()) return done(top.status());
        if ((*top)->size() < 2) return done(absl::InternalError("fan-out read: too few elements"));
        auto drained = common::ReplyInteger((**top)[0], kWhat);
        if (!drained.ok()) return done(drained.status());
        auto entries = common::ReplyArray((**top)[1], kWhat);
        if (!entries.ok()) return done(entries.status());
        FanoutBatch batch;
        batch.own_drained = *drained == 1;
        for (const RedisReply& entry : **entries) {
          if (entry.elements.empty()) continue;
          FanoutEntry e;
          e.id = entry.elements[0].str;
          if (entry.elements.size() < 2 || entry.elements[1].type != RedisReply::Type::kArray) {
            e.gone = true;  // deleted meanwhile (handled before)
          } else if (auto fields = common::ReplyFields(entry.elements[1], kWhat); fields.ok()) {
            e.fields = std::move(*fields);
          } else {
            common::Log::Error("unreadable fan-out entry dropped", {{"shard", shard}});
            e.gone = true;
          }
          batch.entries.push_back(std::move(e));
        }
        done(std::move(batch));
      });
}

void RedisNotificationStore::AckFanout(int shard, const std::vector<std::string>& ids,
                                       Done<int> done) {
  if (ids.empty()) return done(0);
  std::vector<std::string> args = {kGroup};
  args.insert(args.end(), ids.begin(), ids.end());
  redis_.Eval(AckScript(), {Keys::Fanout(shard)}, std::move(args),
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto n = common::ReplyInteger(*reply, "fan-out acknowledgement");
                if (!n.ok()) return done(n.status());
                done(static_cast<int>(*n));
              });
}

// Three steps, the last two only when timers are due (the script must be passed the
// evidence and party record keys the timers name): the due timers; each one's request id
// (from its event's evidence, all at once); the script, which re-checks both.
void RedisNotificationStore::RunRetrievalTimers(const TimerRun& run, Done<TimerOutcome> done) {
  // The shard's first `limit` timers with their due times (not only the due ones): those due
  // are run, the first one not due says when to look again.
  redis_.Command(
      {"ZRANGEBYSCORE", Keys::RetrievalDue(run.shard), "-inf", "+inf", "WITHSCORES", "LIMIT", "0",
       absl::StrCat(run.limit)},
      [this, run, done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        auto read = common::ReplyStrings(*reply, "retrieval timers");
        if (!read.ok()) return done(read.status());
        auto timers = std::make_shared<std::vector<std::string>>();
        int64_t next_due_ms = std::numeric_limits<int64_t>::max();
        for (size_t i = 0; i + 1 < read->size(); i += 2) {
          double score = 0;
          if (!absl::SimpleAtod((*read)[i + 1], &score)) {
            return done(absl::InternalError("retrieval timers: a due time is not a number"));
          }
          const int64_t due_ms = static_cast<int64_t>(score);
          if (due_ms > run.now_ms) {
            next_due_ms = due_ms;
            break;
          }
          timers->push_back((*read)[i]);
        }
        // All `limit` read were due: more may be.
        if (timers->size() >= static_cast<size_t>(run.limit)) next_due_ms = run.now_ms;
        if (timers->empty()) return done(TimerOutcome{0, next_due_ms});
        auto finish = [this, run, timers, done = std::move(done)](
                          std::vector<absl::StatusOr<RedisReply>> requests) mutable {
          std::vector<std::string> keys = {Keys::RetrievalDue(run.shard), Keys::Fanout(run.shard)};
          std::vector<std::string> args = {absl::StrCat(run.now_ms),
                                           absl::StrCat(run.escalation_ms)};
          for (size_t i = 0; i < timers->size(); ++i) {
            if (!requests[i].ok()) return done(requests[i].status());
            const std::string& timer = (*timers)[i];
            const std::string request_id =
                requests[i]->type == RedisReply::Type::kString ? requests[i]->str : "";
            keys.push_back(Keys::Evidence(run.shard, timer.substr(0, timer.find('|'))));
            keys.push_back(Keys::Parties(run.shard, request_id));
            args.push_back(timer);
            args.push_back(request_id);
          }
          redis_.Eval(TimersScript(), std::move(keys), std::move(args),
                      [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                        constexpr char kWhat[] = "retrieval timers";
                        if (!reply.ok()) return done(reply.status());
                        auto elements = common::ReplyArray(*reply, kWhat);
                        if (!elements.ok()) return done(elements.status());
                        if ((*elements)->size() != 2) {
                          return done(absl::InternalError("retrieval timers: unexpected answer"));
                        }
                        auto n = common::ReplyInteger((**elements)[0], kWhat);
                        if (!n.ok()) return done(n.status());
                        auto next = common::ReplyString((**elements)[1], kWhat);
                        if (!next.ok()) return done(next.status());
                        TimerOutcome outcome{static_cast<int>(*n)};
                        double score = 0;
                        if (!next->empty() && absl::SimpleAtod(*next, &score)) {
                          outcome.next_due_ms = static_cast<int64_t>(score);
                        }
                        done(outcome);
                      });
        };
        auto gather = std::make_shared<Gather<decltype(finish)>>(timers->size(), std::move(finish));
        for (size_t i = 0; i < timers->size(); ++i) {
          const std::string& timer = (*timers)[i];
          redis_.Command(
              {"HGET", Keys::Evidence(run.shard, timer.substr(0, timer.find('|'))), "rq"},
              [gather, i](absl::StatusOr<RedisReply> r) { gather->Finished(i, std::move(r)); });
        }
      });
}

void RedisNotificationStore::CountBacklog(int shard, Done<Backlog> done) {
  auto finish = [done = std::move(done)](std::vector<absl::StatusOr<RedisReply>> counts) {
    Backlog backlog;
    for (size_t i = 0; i < counts.size(); ++i) {
      if (!counts[i].ok()) return done(counts[i].status());
      auto n = common::ReplyInteger(*counts[i], "backlog");
      if (!n.ok()) return done(n.status());
      (i == 0 ? backlog.dead_letters : backlog.unretrieved) = *n;
    }
    done(backlog);
  };
  auto gather = std::make_shared<Gather<decltype(finish)>>(2, std::move(finish));
  redis_.Command({"ZCARD", Keys::DeadLetters(shard)},
                 [gather](absl::StatusOr<RedisReply> r) { gather->Finished(0, std::move(r)); });
  redis_.Command({"ZCARD", Keys::RetrievalDue(shard)},
                 [gather](absl::StatusOr<RedisReply> r) { gather->Finished(1, std::move(r)); });
}

}  // namespace rogatory::notification
