#include "deadline_scripts.h"

#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "deadline_logic.h"
#include "deadlines/lua_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/status.h"

namespace rogatory::deadlines::scripts {

using common::LuaScript;
using common::RedisReply;

namespace {

// The scripts, each made (with its SHA-1) on first use.
const LuaScript& CommitScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kDeadlineCommit));
  return *s;
}
const LuaScript& ClaimScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kDeadlineClaim));
  return *s;
}
const LuaScript& ReadScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kDeadlineRead));
  return *s;
}
const LuaScript& PageScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kDeadlineIndexPage));
  return *s;
}
const LuaScript& EraseScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kDeadlineEraseRequest));
  return *s;
}

// Runs `run` (which calls its callback exactly once) and waits for its result. For the
// timer thread and tests only, never from a Redis callback or a gRPC handler.
template <typename T>
absl::StatusOr<T> Wait(std::function<void(Done<T>)> run) {
  struct Slot {
    absl::Notification done;
    absl::StatusOr<T> result = absl::UnknownError("no reply");
  };
  auto slot = std::make_shared<Slot>();
  run([slot](absl::StatusOr<T> r) {
    slot->result = std::move(r);
    slot->done.Notify();
  });
  slot->done.WaitForNotification();
  return std::move(slot->result);
}

struct Prepared {
  std::vector<std::string> keys;
  std::vector<std::string> args;
};

Prepared PrepareCommit(const CommitCall& c) {
  Prepared p;
  const int s = c.shard;
  p.keys = {
      Keys::Of(s, "timers"), Keys::Of(s, "claims"), Keys::Of(s, "claimtok"),
      common::EventKeys::Outbox(s, kEventSource), Keys::Of(s, "open"), Keys::Of(s, "stats"),
      // Untouched when there is no marker or no parties: a name in the shard's slot.
      c.dedupe ? c.dedupe->seen_key : Keys::Of(s, "none"),
      c.parties_request_id.empty() ? Keys::Of(s, "none") : Keys::Parties(s, c.parties_request_id)};
  const common::RequestParties& r = c.parties;
  const bool parties = !c.parties_request_id.empty();
  p.args = {c.dedupe ? c.dedupe->retention_ms : std::string(),
            c.claim_member,
            c.claim_token,
            c.idempotency_key,
            absl::StrCat(c.writes.size()),
            parties ? r.issuing_authority_id : "",
            parties ? r.issuing_state : "",
            parties ? r.executing_authority_id : "",
            parties ? r.requested_state : "",
            parties ? r.notified_authority_id : ""};
  for (const CommitWrite& w : c.writes) {
    p.keys.push_back(Keys::Deadline(s, w.id));
    p.keys.push_back(Keys::ByRequest(s, w.request_id));
    p.keys.push_back(Keys::Sequence(s, w.request_id));
    p.keys.push_back(Keys::ByAuthority(s, w.stored_authority));
    p.keys.push_back(Keys::ByAuthority(s, w.authority));
    p.args.push_back(w.id);
    p.args.push_back(w.expected_version == 0 ? "" : absl::StrCat(w.expected_version));
    p.args.push_back(absl::StrCat(w.expected_version + 1));
    p.args.push_back(w.deadline_pb);
    p.args.push_back(absl::StrCat(w.state));
    p.args.push_back(absl::StrCat(w.due_ms));
    p.args.push_back(w.timer_member);
    p.args.push_back(w.timer_member.empty() ? "" : absl::StrCat(w.timer_score));
    p.args.push_back(w.request_id);
    p.args.push_back(w.authority);
    p.args.push_back(absl::StrCat(w.instrument));
    p.args.push_back(w.stored_authority);
    p.args.push_back(w.event_pb);
  }
  return p;
}

absl::StatusOr<CommitResult> ParseCommit(const absl::StatusOr<RedisReply>& reply) {
  constexpr char kWhat[] = "deadline_commit.lua";
  if (!reply.ok()) return reply.status();
  ASSIGN_OR_RETURN(std::vector<std::string> r, common::ReplyStrings(*reply, kWhat));
  if (r.empty()) return absl::InternalError("unexpected reply to deadline_commit.lua");
  using O = CommitResult::Outcome;
  CommitResult out;
  const std::string& tag = r[0];
  if (tag == "ok") {
    out.outcome = O::kOk;
  } else if (tag == "replayed") {
    out.outcome = O::kReplayed;
  } else if (tag == "fenced") {
    out.outcome = O::kFenced;
  } else if (tag == "duplicate") {
    out.outcome = O::kDuplicate;
  } else if ((tag == "conflict" || tag == "exists") && r.size() == 2) {
    out.outcome = tag == "conflict" ? O::kConflict : O::kExists;
    out.deadline_id = r[1];
  } else {
    return absl::InternalError("unexpected reply to deadline_commit.lua");
  }
  return out;
}

absl::StatusOr<ReadResult> ParseRead(const absl::StatusOr<RedisReply>& reply, size_t deadlines,
                                     size_t fields) {
  if (!reply.ok()) return reply.status();
  ASSIGN_OR_RETURN(std::vector<std::string> r, common::ReplyStrings(*reply, "deadline_read.lua"));
  if (r.size() != deadlines * fields) {
    return absl::InternalError("unexpected reply to deadline_read.lua");
  }
  ReadResult out(deadlines);
  for (size_t i = 0; i < deadlines; ++i) {
    out[i].assign(std::make_move_iterator(r.begin() + i * fields),
                  std::make_move_iterator(r.begin() + (i + 1) * fields));
  }
  return out;
}

}  // namespace

std::string Keys::Of(int shard, const std::string& suffix) {
  return absl::StrCat(common::Sharding::Prefix(shard), "dl:", suffix);
}

void Commit(common::RedisClient& redis, const CommitCall& call, Done<CommitResult> done) {
  Prepared p = PrepareCommit(call);
  redis.Eval(CommitScript(), std::move(p.keys), std::move(p.args),
             [done = std::move(done)](absl::StatusOr<RedisReply> r) { done(ParseCommit(r)); });
}

absl::StatusOr<CommitResult> CommitBlocking(common::RedisClient& redis, const CommitCall& call) {
  return Wait<CommitResult>([&](Done<CommitResult> done) { Commit(redis, call, done); });
}

absl::StatusOr<std::vector<ClaimedMember>> ClaimBlocking(common::RedisClient& redis,
                                                         const ClaimCall& call) {
  constexpr char kWhat[] = "deadline_claim.lua";
  const int s = call.shard;
  ASSIGN_OR_RETURN(RedisReply reply,
                   common::RunRedisScript(redis, ClaimScript(),
                                          {Keys::Of(s, "timers"), Keys::Of(s, "claims"),
                                           Keys::Of(s, "claimtok"), Keys::Of(s, "fence")},
                                          {absl::StrCat(call.now_ms), absl::StrCat(call.lease_ms),
                                           absl::StrCat(call.limit)}));
  ASSIGN_OR_RETURN(const std::vector<RedisReply>* entries, common::ReplyArray(reply, kWhat));
  std::vector<ClaimedMember> out;
  for (const RedisReply& e : *entries) {
    ASSIGN_OR_RETURN(std::vector<std::string> f, common::ReplyStrings(e, kWhat));
    if (f.size() != 4) return absl::InternalError("unexpected reply to deadline_claim.lua");
    ClaimedMember m;
    m.member = std::move(f[0]);
    m.token = std::move(f[1]);
    ASSIGN_OR_RETURN(m.due_ms, common::ParseDecimal(f[2], kWhat));
    m.takeover = f[3] == "1";
    out.push_back(std::move(m));
  }
  return out;
}

void Read(common::RedisClient& redis, const ReadCall& call, Done<ReadResult> done) {
  if (call.deadline_ids.empty()) return done(ReadResult());
  std::vector<std::string> keys;
  keys.reserve(call.deadline_ids.size());
  for (const std::string& id : call.deadline_ids) keys.push_back(Keys::Deadline(call.shard, id));
  redis.Eval(ReadScript(), std::move(keys), call.fields,
             [done = std::move(done), n = call.deadline_ids.size(), fields = call.fields.size()](
                 absl::StatusOr<RedisReply> r) { done(ParseRead(r, n, fields)); });
}

absl::StatusOr<ReadResult> ReadBlocking(common::RedisClient& redis, const ReadCall& call) {
  return Wait<ReadResult>([&](Done<ReadResult> done) { Read(redis, call, done); });
}

void Page(common::RedisClient& redis, const PageCall& call, Done<PageResult> done) {
  std::vector<std::string> keys = {Keys::Of(call.shard, call.index)};
  std::vector<std::string> args = {absl::StrCat(call.max_score), absl::StrCat(call.limit),
                                   call.after ? absl::StrCat(call.after->first) : std::string(),
                                   call.after ? call.after->second : std::string(),
                                   absl::StrCat(call.fields.size())};
  args.insert(args.end(), call.fields.begin(), call.fields.end());
  for (const std::string& id : call.hint) {
    keys.push_back(Keys::Deadline(call.shard, id));
    args.push_back(id);
  }
  redis.Eval(
      PageScript(), std::move(keys), std::move(args),
      [done = std::move(done), nfields = call.fields.size()](absl::StatusOr<RedisReply> reply) {
        constexpr char kWhat[] = "deadline_index_page.lua";
        if (!reply.ok()) return done(reply.status());
        auto r = common::ReplyStrings(*reply, kWhat);
        if (!r.ok()) return done(r.status());
        const absl::Status unexpected =
            absl::InternalError("unexpected reply to deadline_index_page.lua");
        if (r->size() < 2) return done(unexpected);
        const bool read = (*r)[1] == "1";
        const size_t per_entry = 2 + (read ? nfields : 0);
        if ((r->size() - 2) % per_entry != 0) return done(unexpected);
        const size_t n = (r->size() - 2) / per_entry;
        PageResult page;
        page.more = (*r)[0] == "1";
        for (size_t k = 0; k < n; ++k) {
          PageResult::Entry e;
          e.id = (*r)[2 + 2 * k];
          // Scores are whole milliseconds; Redis may answer them in exponent notation.
          double score = 0;
          if (!absl::SimpleAtod((*r)[3 + 2 * k], &score)) {
            return done(absl::InternalError("unexpected score in a deadline index"));
          }
          e.score = static_cast<int64_t>(score);
          page.entries.push_back(std::move(e));
        }
        if (read) {
          ReadResult fields;
          for (size_t k = 0; k < n; ++k) {
            const size_t at = 2 + 2 * n + k * nfields;
            fields.emplace_back(r->begin() + at, r->begin() + at + nfields);
          }
          page.read = std::move(fields);
        }
        done(std::move(page));
      });
}

void Erase(common::RedisClient& redis, const EraseCall& call, Done<EraseResult> done) {
  const int s = call.shard;
  std::vector<std::string> keys = {call.dedupe.seen_key,
                                   Keys::Of(s, "timers"),
                                   Keys::Of(s, "claims"),
                                   Keys::Of(s, "claimtok"),
                                   Keys::Of(s, "open"),
                                   Keys::Of(s, "stats"),
                                   Keys::ByRequest(s, call.request_id),
                                   Keys::Sequence(s, call.request_id),
                                   Keys::Parties(s, call.request_id)};
  std::vector<std::string> args = {call.dedupe.retention_ms};
  for (const EraseCall::Deadline& d : call.deadlines) {
    keys.push_back(Keys::Deadline(s, d.id));
    keys.push_back(Keys::ByAuthority(s, d.authority));
    args.push_back(d.id);
    args.push_back(d.authority);
  }
  redis.Eval(EraseScript(), std::move(keys), std::move(args),
             [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
               constexpr char kWhat[] = "deadline_erase_request.lua";
               if (!reply.ok()) return done(reply.status());
               auto r = common::ReplyArray(*reply, kWhat);
               if (!r.ok()) return done(r.status());
               if ((*r)->empty()) {
                 return done(absl::InternalError("unexpected reply to " + std::string(kWhat)));
               }
               auto tag = common::ReplyString((**r)[0], kWhat);
               if (!tag.ok()) return done(tag.status());
               if (*tag == "handled") return done(EraseResult::kHandled);
               if (*tag == "duplicate") return done(EraseResult::kDuplicate);
               if (*tag == "retry") return done(EraseResult::kRetry);
               done(absl::InternalError("unexpected reply to " + std::string(kWhat)));
             });
}

}  // namespace rogatory::deadlines::scripts
