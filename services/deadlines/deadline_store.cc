#include "deadline_store.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "deadline_logic.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::deadlines {

using common::LuaScript;
using common::RedisReply;

namespace {

// The commit body. `o` is the offset of its keys and arguments: 1 in the receiving variant,
// whose KEYS[1]/ARGV[1] belong to ReceiverScript's duplicate marker.
// KEYS[o+1..o+6]: timers, claims, claimtok, outbox, open, stats
// ARGV[o+1..o+5]: key prefix, number of writes, claim member, claim token, idempotency key;
// then per write 11: id, expected ver ('' new), new ver, pb, state, due ms,
// timers ("member score ..."), request, authority, instrument, event ('' none); LAST the
// need-to-know parties: request id, issuing authority, issuing state, executing authority,
// requested state, each followed by '\n' ('' = none), popped first and written in
// dl:parties:<request> (non-empty values) when the commit succeeds.
constexpr char kCommitBody[] = R"lua(
local parties_arg = table.remove(ARGV)
-- A refusal undoes the receiving variant's duplicate marker, so the event is handled on retry.
local function refuse(reply)
  if o == 1 then redis.call('DEL', KEYS[1]) end
  return reply
end
local P = ARGV[o+1]
local n = tonumber(ARGV[o+2])
local claim = ARGV[o+3]
local idem = ARGV[o+5]
if claim ~= '' then
  local t = redis.call('HGET', KEYS[o+3], claim)
  if not t then return refuse({'fenced'}) end
  local bar = string.find(t, '|', 1, true)
  if string.sub(t, 1, bar - 1) ~= ARGV[o+4] then return refuse({'fenced'}) end
end
for i = 0, n - 1 do
  local b = o + 6 + i * 11
  local key = P .. 'dl:d:' .. ARGV[b]
  if idem ~= '' and redis.call('HEXISTS', key, 'idem:' .. idem) == 1 then return refuse({'replayed'}) end
  local cur = redis.call('HGET', key, 'ver')
  if ARGV[b + 1] == '' then
    if cur then return refuse({'exists', ARGV[b]}) end
  elseif cur ~= ARGV[b + 1] then
    return refuse({'conflict', ARGV[b]})
  end
end
local function varint(x)
  local s = {}
  while x >= 128 do
    s[#s + 1] = string.char(x % 128 + 128)
    x = math.floor(x / 128)
  end
  s[#s + 1] = string.char(x)
  return table.concat(s)
end
for i = 0, n - 1 do
  local b = o + 6 + i * 11
  local id = ARGV[b]
  local key = P .. 'dl:d:' .. id
  local old = redis.call('HMGET', key, 'timers', 'open', 'instrument', 'authority', 'state')
  local members = {}
  local newdue = {}
  for m, sc in string.gmatch(ARGV[b + 6], '(%S+) (%S+)') do
    members[#members + 1] = m
    newdue[m] = tonumber(sc)
  end
  -- Timers that went away are dropped, claimed or not (a claimant then finds itself fenced).
  -- A claimed timer that keeps its due time keeps its claim, so its claimant still fires it.
  local keep_claim = {}
  if old[1] then
    for m in string.gmatch(old[1], '%S+') do
      -- The committing claim's own timer is out of the timer set (claimed) and released
      -- below.
      if m ~= claim then
        local claimed = redis.call('HGET', KEYS[o+3], m)
        local due_of_claim = nil
        if claimed then
          due_of_claim = tonumber(string.sub(claimed, string.find(claimed, '|', 1, true) + 1))
        end
        if newdue[m] ~= nil and claimed and due_of_claim == newdue[m] and m ~= claim then
          keep_claim[m] = true
        else
          redis.call('ZREM', KEYS[o+1], m)
          redis.call('ZREM', KEYS[o+2], m)
          redis.call('HDEL', KEYS[o+3], m)
        end
      end
    end
  end
  local state = ARGV[b + 4]
  local due = ARGV[b + 5]
  local request = ARGV[b + 7]
  local authority = ARGV[b + 8]
  local instrument = ARGV[b + 9]
  local open = (state == '1' or state == '2' or state == '3')
  -- Open before and after in the same indexes and counts: only the scores move.
  local same_open = open and old[2] == '1' and old[3] == instrument and
                    (old[4] or '') == authority
  if old[2] == '1' and not same_open then
    redis.call('HINCRBY', KEYS[o+6], 'open:' .. old[3], -1)
    redis.call('ZREM', KEYS[o+5], id)
    if old[4] and old[4] ~= '' then redis.call('ZREM', P .. 'dl:byauth:' .. old[4], id) end
  end
  if old[5] == '3' and state ~= '3' then redis.call('HINCRBY', KEYS[o+6], 'overdue', -1) end
  local pending = {}
  for _, m in ipairs(members) do
    if not keep_claim[m] then
      pending[#pending + 1] = newdue[m]
      pending[#pending + 1] = m
    end
  end
  if #pending > 0 then redis.call('ZADD', KEYS[o+1], unpack(pending)) end
  redis.call('HSET', key, 'pb', ARGV[b + 3], 'ver', ARGV[b + 2], 'state', state,
             'timers', table.concat(members, ' '), 'open', open and '1' or '0',
             'instrument', instrument, 'authority', authority, 'request', request)
  redis.call('ZADD', P .. 'dl:byreq:' .. request, due, id)
  if open then
    if not same_open then redis.call('HINCRBY', KEYS[o+6], 'open:' .. instrument, 1) end
    redis.call('ZADD', KEYS[o+5], due, id)
    if authority ~= '' then redis.call('ZADD', P .. 'dl:byauth:' .. authority, due, id) end
  end
  if state == '3' and old[5] ~= '3' then redis.call('HINCRBY', KEYS[o+6], 'overdue', 1) end
  if idem ~= '' then redis.call('HSET', key, 'idem:' .. idem, '1') end
  if ARGV[b + 10] ~= '' then
    local seq = redis.call('INCR', P .. 'dl:seq:' .. request)
    redis.call('XADD', KEYS[o+4], '*', 'ev', ARGV[b + 10] .. '\24' .. varint(seq))
  end
end
if claim ~= '' then
  redis.call('ZREM', KEYS[o+2], claim)
  redis.call('HDEL', KEYS[o+3], claim)
end
if parties_arg ~= '' then
  local f = {}
  for v in string.gmatch(parties_arg, '([^\n]*)\n') do f[#f + 1] = v end
  for j, name in ipairs({'ia', 'is', 'ea', 'rs', 'na'}) do
    if f[j + 1] and f[j + 1] ~= '' then
      redis.call('HSET', P .. 'dl:parties:' .. f[1], name, f[j + 1])
    end
  end
end
return {'ok'}
)lua";

const LuaScript& CommitScript() {
  static const LuaScript* s = new LuaScript(absl::StrCat("local o = 0\n", kCommitBody));
  return *s;
}
const LuaScript& ReceiverCommitScript() {
  static const LuaScript* s =
      new LuaScript(common::ReceiverScript(absl::StrCat("local o = 1\n", kCommitBody)));
  return *s;
}

// KEYS: timers, claims, claimtok, fence. ARGV: now ms, lease ms, limit, key prefix.
// Returns {member, token, due ms, takeover '1'/'0', pb, ver} per claimed timer.
const LuaScript& ClaimScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local out = {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, m in ipairs(expired) do
  local old = redis.call('HGET', KEYS[3], m)
  local due = '0'
  if old then due = string.sub(old, string.find(old, '|', 1, true) + 1) end
  local tok = redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[2], now + lease, m)
  redis.call('HSET', KEYS[3], m, tok .. '|' .. due)
  out[#out + 1] = {m, tostring(tok), due, '1'}
end
local left = limit - #expired
if left > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, left)
  for i = 1, #due, 2 do
    local m = due[i]
    local d = due[i + 1]
    redis.call('ZREM', KEYS[1], m)
    local tok = redis.call('INCR', KEYS[4])
    redis.call('ZADD', KEYS[2], now + lease, m)
    redis.call('HSET', KEYS[3], m, tok .. '|' .. d)
    out[#out + 1] = {m, tostring(tok), d, '0'}
  end
end
for _, e in ipairs(out) do
  local id = string.sub(e[1], 1, string.find(e[1], '|', 1, true) - 1)
  local r = redis.call('HMGET', ARGV[4] .. 'dl:d:' .. id, 'pb', 'ver')
  e[5] = r[1] or ''
  e[6] = r[2] or ''
end
return out
)lua");
  return *s;
}

// KEYS: index. ARGV: max due ms, limit, key prefix. Returns {pb, ver, pb, ver, ...}.
const LuaScript& ListScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local r = redis.call('HMGET', ARGV[3] .. 'dl:d:' .. id, 'pb', 'ver')
  if r[1] then
    out[#out + 1] = r[1]
    out[#out + 1] = r[2]
  end
end
return out
)lua");
  return *s;
}

// KEYS: index. ARGV: max score (inclusive), limit, key prefix, cursor score ('' none),
// cursor id. Returns {more, id, score, pb, ver, id, score, pb, ver, ...} in (score, id)
// order after the cursor; pb and ver are '' for an index entry without its deadline. `more`
// is '1' when `limit` entries were read without passing the max score.
const LuaScript& PageScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local key = KEYS[1]
local max = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
-- Byte order, as Redis orders members of one score (Lua's < follows the locale).
local function not_after(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end
local start = 0
if ARGV[4] ~= '' then
  local lo = redis.call('ZCOUNT', key, '-inf', '(' .. ARGV[4])
  local hi = lo + redis.call('ZCOUNT', key, ARGV[4], ARGV[4])
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local m = redis.call('ZRANGE', key, mid, mid)[1]
    if not_after(m, ARGV[5]) then lo = mid + 1 else hi = mid end
  end
  start = lo
end
local got = redis.call('ZRANGE', key, start, start + limit - 1, 'WITHSCORES')
local out = {'0'}
local read = 0
for i = 1, #got, 2 do
  if tonumber(got[i + 1]) > max then return out end
  read = read + 1
  local r = redis.call('HMGET', ARGV[3] .. 'dl:d:' .. got[i], 'pb', 'ver')
  out[#out + 1] = got[i]
  out[#out + 1] = got[i + 1]
  out[#out + 1] = r[1] or ''
  out[#out + 1] = r[2] or ''
end
if read == limit then out[1] = '1' end
return out
)lua");
  return *s;
}

int64_t Ms(absl::Time t) { return absl::ToUnixMillis(t); }
// A timer's score: its due time rounded UP to the millisecond. A claim takes timers whose
// score is at most the claim's `now` in whole milliseconds; rounding down would let a claim
// in the same millisecond as a due time with a sub-millisecond part take the timer before
// it is due, and Fire (comparing exact times) would find nothing to do and the timer would
// be released unfired: lost.
int64_t TimerScore(absl::Time due) {
  const int64_t ms = absl::ToUnixMillis(due);
  return absl::FromUnixMillis(ms) < due ? ms + 1 : ms;
}

}  // namespace

// Retention (REQUEST_ERASED): every deadline of the request goes, with its timers, claims,
// index entries and counts, and the request's event sequence. Emits nothing (the request is
// gone: nobody is to be told that its deadlines stopped).
// KEYS[1] seen marker (ReceiverScript), [2] timers, [3] claims, [4] claimtok, [5] open,
// [6] stats, [7] byreq:<request>, [8] seq:<request>, [9] parties:<request>. ARGV[1] marker
// retention, [2] prefix.
namespace {
const LuaScript& EraseRequestScript() {
  static const LuaScript* s =
      new LuaScript(absl::StrCat(common::kScriptRunsWhenFull, common::ReceiverScript(R"lua(
local P = ARGV[2]
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
  local key = P .. 'dl:d:' .. id
  local old = redis.call('HMGET', key, 'timers', 'open', 'instrument', 'authority', 'state')
  if old[1] then
    for m in string.gmatch(old[1], '%S+') do
      redis.call('ZREM', KEYS[2], m)
      redis.call('ZREM', KEYS[3], m)
      redis.call('HDEL', KEYS[4], m)
    end
  end
  if old[2] == '1' then
    redis.call('HINCRBY', KEYS[6], 'open:' .. old[3], -1)
    redis.call('ZREM', KEYS[5], id)
    if old[4] and old[4] ~= '' then redis.call('ZREM', P .. 'dl:byauth:' .. old[4], id) end
  end
  if old[5] == '3' then redis.call('HINCRBY', KEYS[6], 'overdue', -1) end
  redis.call('DEL', key)
  n = n + 1
end
redis.call('DEL', KEYS[7], KEYS[8], KEYS[9])
return {'handled', n}
)lua")));
  return *s;
}
}  // namespace

void DeadlineStore::EraseRequest(int shard, const std::string& request_id,
                                 const common::Dedupe& dedupe, CommitCallback done) {
  redis_.Eval(
      EraseRequestScript(),
      {dedupe.seen_key, Key(shard, "timers"), Key(shard, "claims"), Key(shard, "claimtok"),
       Key(shard, "open"), Key(shard, "stats"), Key(shard, absl::StrCat("byreq:", request_id)),
       Key(shard, absl::StrCat("seq:", request_id)),
       Key(shard, absl::StrCat("parties:", request_id))},
      {dedupe.retention_ms, common::Sharding::Prefix(shard)}, [done](absl::StatusOr<RedisReply> r) {
        if (!r.ok()) return done(r.status());
        if (!r->elements.empty() && r->elements[0].str == "duplicate") {
          return done(CommitOutcome::kDuplicate);
        }
        done(CommitOutcome::kOk);
      });
}

std::string DeadlineStore::Key(int shard, const std::string& suffix) {
  return absl::StrCat(common::Sharding::Prefix(shard), "dl:", suffix);
}

absl::StatusOr<int> DeadlineStore::ShardOfRequest(const std::string& request_id) const {
  return sharding_.ShardOf("rq", request_id);
}
absl::StatusOr<int> DeadlineStore::ShardOfDeadline(const std::string& deadline_id) const {
  return sharding_.ShardOf("dl", deadline_id);
}

absl::StatusOr<StoredDeadline> ParseStored(const RedisReply& pb, const RedisReply& ver) {
  StoredDeadline s;
  if (pb.is_nil() || !s.deadline.ParseFromString(pb.str) ||
      !absl::SimpleAtoi(ver.str, &s.version)) {
    return absl::DataLossError("stored deadline is unreadable");
  }
  return s;
}

void DeadlineStore::Get(const std::string& deadline_id, GetCallback done,
                        const std::string& idempotency_key) {
  auto shard = ShardOfDeadline(deadline_id);
  if (!shard.ok()) {
    done(absl::NotFoundError("no deadline has this id"));
    return;
  }
  redis_.Command({"HMGET", Key(*shard, "d:" + deadline_id), "pb", "ver", "idem:" + idempotency_key},
                 [done, idempotency_key](absl::StatusOr<RedisReply> r) {
                   if (!r.ok()) return done(r.status());
                   if (r->elements.size() != 3 || r->elements[0].is_nil()) {
                     return done(absl::NotFoundError("no deadline has this id"));
                   }
                   auto s = ParseStored(r->elements[0], r->elements[1]);
                   if (s.ok()) s->replayed = !idempotency_key.empty() && !r->elements[2].is_nil();
                   done(std::move(s));
                 });
}

absl::StatusOr<StoredDeadline> DeadlineStore::GetBlocking(const std::string& deadline_id) {
  ASSIGN_OR_RETURN(int shard, ShardOfDeadline(deadline_id));
  ASSIGN_OR_RETURN(
      RedisReply r,
      common::RunRedisCommand(redis_, {"HMGET", Key(shard, "d:" + deadline_id), "pb", "ver"}));
  if (r.elements.size() != 2 || r.elements[0].is_nil()) {
    return absl::NotFoundError("no deadline has this id");
  }
  return ParseStored(r.elements[0], r.elements[1]);
}

DeadlineStore::Prepared DeadlineStore::PrepareCommit(int shard,
                                                     const std::vector<DeadlineWrite>& writes,
                                                     const CommitOptions& options) const {
  Prepared p;
  if (options.dedupe != nullptr) {
    p.keys.push_back(options.dedupe->seen_key);
    p.args.push_back(options.dedupe->retention_ms);
  }
  p.keys.push_back(Key(shard, "timers"));
  p.keys.push_back(Key(shard, "claims"));
  p.keys.push_back(Key(shard, "claimtok"));
  p.keys.push_back(common::EventKeys::Outbox(shard, kEventSource));
  p.keys.push_back(Key(shard, "open"));
  p.keys.push_back(Key(shard, "stats"));
  p.args.push_back(common::Sharding::Prefix(shard));
  p.args.push_back(absl::StrCat(writes.size()));
  p.args.push_back(options.claim_member);
  p.args.push_back(options.claim_token);
  p.args.push_back(options.idempotency_key);
  for (const DeadlineWrite& w : writes) {
    const v1::Deadline& d = w.deadline;
    p.args.push_back(d.id());
    p.args.push_back(w.expected_version == 0 ? "" : absl::StrCat(w.expected_version));
    p.args.push_back(absl::StrCat(w.expected_version + 1));
    p.args.push_back(d.SerializeAsString());
    p.args.push_back(absl::StrCat(static_cast<int>(d.state())));
    p.args.push_back(absl::StrCat(Ms(FromProtoTime(d.due_time()))));
    // Only the deadline's next timer is in the shard's timer set: firing it writes the
    // deadline again, which schedules the one after it. One member a deadline instead of one
    // per reminder (memory), and the same firing order.
    const std::vector<TimerSpec> timers = TimersOf(d);
    const auto next =
        std::min_element(timers.begin(), timers.end(),
                         [](const TimerSpec& a, const TimerSpec& b) { return a.due < b.due; });
    p.args.push_back(next == timers.end() ? ""
                                          : absl::StrCat(next->member, " ", TimerScore(next->due)));
    p.args.push_back(d.request_id());
    p.args.push_back(IsOpen(d.state()) ? d.executing_authority_id() : "");
    p.args.push_back(absl::StrCat(static_cast<int>(d.instrument())));
    p.args.push_back(w.event ? w.event->SerializeAsString() : "");
  }
  if (options.parties_request_id.empty()) {
    p.args.push_back("");
  } else {
    const common::RequestParties& r = options.parties;
    p.args.push_back(absl::StrCat(options.parties_request_id, "\n", r.issuing_authority_id, "\n",
                                  r.issuing_state, "\n", r.executing_authority_id, "\n",
                                  r.requested_state, "\n", r.notified_authority_id, "\n"));
  }
  return p;
}

void DeadlineStore::GetParties(
    const std::string& request_id,
    std::function<void(absl::StatusOr<std::optional<common::RequestParties>>)> done) {
  auto shard = ShardOfRequest(request_id);
  if (!shard.ok()) return done(shard.status());
  common::LoadRequestParties(redis_, Key(*shard, absl::StrCat("parties:", request_id)),
                             std::move(done));
}

absl::StatusOr<CommitOutcome> DeadlineStore::ParseCommit(const absl::StatusOr<RedisReply>& r) {
  if (!r.ok()) return r.status();
  if (r->elements.empty()) return absl::InternalError("unexpected reply to commit");
  const std::string& tag = r->elements[0].str;
  if (tag == "ok") return CommitOutcome::kOk;
  if (tag == "replayed") return CommitOutcome::kReplayed;
  if (tag == "conflict") return CommitOutcome::kConflict;
  if (tag == "exists") return CommitOutcome::kExists;
  if (tag == "fenced") return CommitOutcome::kFenced;
  if (tag == "duplicate") return CommitOutcome::kDuplicate;
  return absl::InternalError("unexpected reply to commit");
}

void DeadlineStore::Commit(int shard, std::vector<DeadlineWrite> writes,
                           const CommitOptions& options, CommitCallback done) {
  Prepared p = PrepareCommit(shard, writes, options);
  redis_.Eval(options.dedupe ? ReceiverCommitScript() : CommitScript(), std::move(p.keys),
              std::move(p.args), [done](absl::StatusOr<RedisReply> r) { done(ParseCommit(r)); });
}

absl::StatusOr<CommitOutcome> DeadlineStore::CommitBlocking(int shard,
                                                            std::vector<DeadlineWrite> writes,
                                                            const CommitOptions& options) {
  Prepared p = PrepareCommit(shard, writes, options);
  return ParseCommit(
      common::RunRedisScript(redis_, options.dedupe ? ReceiverCommitScript() : CommitScript(),
                             std::move(p.keys), std::move(p.args)));
}

void DeadlineStore::ListIndex(int shard, const std::string& index, absl::Time due_before, int limit,
                              ListCallback done) {
  redis_.Eval(ListScript(), {Key(shard, index)},
              {absl::StrCat(Ms(due_before)), absl::StrCat(limit), common::Sharding::Prefix(shard)},
              [done](absl::StatusOr<RedisReply> r) {
                if (!r.ok()) return done(r.status());
                std::vector<StoredDeadline> out;
                for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
                  auto s = ParseStored(r->elements[i], r->elements[i + 1]);
                  if (!s.ok()) return done(s.status());
                  out.push_back(*std::move(s));
                }
                done(std::move(out));
              });
}

void DeadlineStore::ListIndexPage(int shard, const std::string& index, int64_t max_score, int limit,
                                  const std::optional<IndexCursor>& after, PageCallback done) {
  redis_.Eval(
      PageScript(), {Key(shard, index)},
      {absl::StrCat(max_score), absl::StrCat(limit), common::Sharding::Prefix(shard),
       after ? absl::StrCat(after->score) : std::string(), after ? after->id : std::string()},
      [done](absl::StatusOr<RedisReply> r) {
        if (!r.ok()) return done(r.status());
        if (r->elements.empty()) {
          return done(absl::InternalError("unexpected reply to page"));
        }
        IndexPage page;
        page.more = r->elements[0].str == "1";
        for (size_t i = 1; i + 3 < r->elements.size(); i += 4) {
          IndexEntry e;
          e.id = r->elements[i].str;
          double score = 0;
          if (!absl::SimpleAtod(r->elements[i + 1].str, &score)) {
            return done(absl::InternalError("unexpected score in an index"));
          }
          e.score = static_cast<int64_t>(score);
          if (!r->elements[i + 2].str.empty()) {
            auto s = ParseStored(r->elements[i + 2], r->elements[i + 3]);
            if (!s.ok()) return done(s.status());
            e.deadline = *std::move(s);
          }
          page.entries.push_back(std::move(e));
        }
        done(std::move(page));
      });
}

absl::StatusOr<std::vector<ClaimedTimer>> DeadlineStore::Claim(int shard, absl::Time now,
                                                               absl::Duration lease, int limit) {
  ASSIGN_OR_RETURN(
      RedisReply r,
      common::RunRedisScript(
          redis_, ClaimScript(),
          {Key(shard, "timers"), Key(shard, "claims"), Key(shard, "claimtok"), Key(shard, "fence")},
          {absl::StrCat(Ms(now)), absl::StrCat(absl::ToInt64Milliseconds(lease)),
           absl::StrCat(limit), common::Sharding::Prefix(shard)}));
  std::vector<ClaimedTimer> out;
  for (const RedisReply& e : r.elements) {
    if (e.elements.size() < 6) return absl::InternalError("unexpected reply to claim");
    ClaimedTimer t;
    t.member = e.elements[0].str;
    t.token = e.elements[1].str;
    int64_t due_ms = 0;
    absl::SimpleAtoi(e.elements[2].str, &due_ms);
    t.due = absl::FromUnixMillis(due_ms);
    t.takeover = e.elements[3].str == "1";
    if (!e.elements[4].str.empty()) {
      auto s = ParseStored(e.elements[4], e.elements[5]);
      if (s.ok()) t.deadline = *std::move(s);
    }
    out.push_back(std::move(t));
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> DeadlineStore::Stats(int shard) {
  ASSIGN_OR_RETURN(RedisReply r, common::RunRedisCommand(redis_, {"HGETALL", Key(shard, "stats")}));
  std::vector<std::pair<std::string, int64_t>> out;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    int64_t v = 0;
    absl::SimpleAtoi(r.elements[i + 1].str, &v);
    out.emplace_back(r.elements[i].str, v);
  }
  return out;
}

absl::StatusOr<int64_t> DeadlineStore::CountOpenDue(int shard, absl::Time from, absl::Time to) {
  ASSIGN_OR_RETURN(RedisReply r,
                   common::RunRedisCommand(redis_, {"ZCOUNT", Key(shard, "open"),
                                                    absl::StrCat("(", absl::ToUnixMillis(from)),
                                                    absl::StrCat(absl::ToUnixMillis(to))}));
  return common::ReplyInteger(r, "ZCOUNT dl:open");
}

}  // namespace rogatory::deadlines
