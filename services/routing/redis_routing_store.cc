#include "redis_routing_store.h"

#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/time_util.h"
#include "rogatory/common/logging.h"
#include "routing_event_handler.h"

namespace rogatory::routing {
namespace {

using common::LuaScript;
using common::RedisReply;
using common::v1::Event;
using google::protobuf::util::TimeUtil;

constexpr char kEmitter[] = "routing";
constexpr char kServiceActor[] = "rogatory-routing";

// Shared Lua helpers. Events are built by appending protobuf fields to a serialized template
// (request id, trace id, instrument, source, request facts): a field that appears later in
// the encoding is simply another field of the message, so the script can add what only it
// knows (event id, per-request sequence, job payloads) without a protobuf library.
// Actor, occur_time and payload are appended exactly once per event (message fields merge).
constexpr char kLuaLib[] = R"lua(
local function varint(n)
  local out = {}
  n = math.floor(n)
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end
local function pstr(f, v)
  if v == nil or v == false or v == '' then return '' end
  return varint(f * 8 + 2) .. varint(#v) .. v
end
local function pint(f, v)
  v = tonumber(v)
  if v == nil or v == 0 then return '' end
  return varint(f * 8) .. varint(v)
end
local function pmsg(f, v) return varint(f * 8 + 2) .. varint(#v) .. v end
local B32 = '0123456789abcdefghjkmnpqrstvwxyz'
local EV = {base = '', n = 0}
-- The first event of a script takes the ULID the caller made; later ones replace its last
-- four (random) characters with a counter.
local function event_id()
  EV.n = EV.n + 1
  if EV.n == 1 then return EV.base end
  local n, s = EV.n, ''
  for _ = 1, 4 do
    local d = n % 32
    s = string.sub(B32, d + 1, d + 1) .. s
    n = math.floor(n / 32)
  end
  return string.sub(EV.base, 1, 22) .. s
end
local CTX = {}
local function emit(rid, tmpl, typ, status, reason, payload)
  local seq = redis.call('INCR', CTX.P .. 'seq:' .. rid)
  local now = tonumber(CTX.now)
  local ts = pint(1, math.floor(now / 1000)) .. pint(2, (now % 1000) * 1000000)
  local ev = tmpl .. pstr(1, event_id()) .. pint(3, seq) .. pint(4, typ) .. pmsg(5, ts) ..
             CTX.actor .. pstr(8, reason) .. pint(11, status) .. payload
  redis.call('XADD', CTX.outbox, '*', 'ev', ev)
end
local function job_payload(jid, h)
  return pmsg(22, pstr(1, jid) .. pstr(2, h.doc) .. pstr(3, h.src) .. pstr(4, h.tgt) ..
                  pstr(5, h.tdoc) .. pstr(6, h.fcode))
end
local NO_DUE = 9000000000000
local function score(urg, due)
  local r = 2
  urg = tonumber(urg)
  if urg == 3 then r = 0 elseif urg == 2 then r = 1 end
  return string.format('%.0f', r * 10000000000000 + tonumber(due))
end
local function job_get(jid)
  local flat = redis.call('HGETALL', CTX.P .. 'job:' .. jid)
  if #flat == 0 then return nil, flat end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h, flat
end
-- Queue keys use lower-case tags: BCP 47 is case-insensitive ("pt-PT" = "pt-pt").
local function enqueue(jid, h)
  local pair = string.lower(h.src .. '>' .. h.tgt)
  redis.call('ZADD', CTX.P .. 'q:' .. pair, score(h.urg, h.due), jid)
  redis.call('ZADD', CTX.P .. 'qa:' .. pair, h.created, jid)
  redis.call('SADD', CTX.P .. 'pairs', pair)
end
local function dequeue(jid, h)
  local pair = string.lower(h.src .. '>' .. h.tgt)
  redis.call('ZREM', CTX.P .. 'q:' .. pair, jid)
  redis.call('ZREM', CTX.P .. 'qa:' .. pair, jid)
end
-- The holder's index of the jobs it holds (ListTranslationJobs, queue HELD), by the same
-- score as the queues.
local function hold(jid, h)
  if h.by and h.by ~= '' then
    redis.call('ZADD', CTX.P .. 'held:' .. h.by, score(h.urg, h.due), jid)
  end
end
local function unhold(jid, h)
  if h.by and h.by ~= '' then redis.call('ZREM', CTX.P .. 'held:' .. h.by, jid) end
end
local function set_status(jid, h, status)
  h.status = status
  redis.call('HSET', CTX.P .. 'job:' .. jid, 'status', status, 'updated', CTX.now)
end
-- Queues the job of (request, document, target) unless it exists; returns 1 if created.
local function create_job(rid, doc, dec)
  local jid = 'tj-' .. CTX.shard .. '-' ..
              string.sub(redis.sha1hex(rid .. '\n' .. doc .. '\n' .. dec.tgt), 1, 26)
  if redis.call('EXISTS', CTX.P .. 'job:' .. jid) == 1 then return 0 end
  local h = {rid = rid, doc = doc, src = dec.src, tgt = dec.tgt, status = '1', urg = dec.urg,
             due = dec.due or NO_DUE, attempts = '0', token = '0', created = CTX.now}
  redis.call('HSET', CTX.P .. 'job:' .. jid, 'rid', rid, 'doc', doc, 'src', h.src,
             'tgt', h.tgt, 'status', '1', 'urg', h.urg, 'due', h.due, 'attempts', '0',
             'token', '0', 'created', CTX.now, 'updated', CTX.now)
  redis.call('SADD', CTX.P .. 'jobs:' .. rid, jid)
  enqueue(jid, h)
  emit(rid, dec.tmpl, 51, 0, '', job_payload(jid, h))
  return 1
end
local function decision(rid)
  local v = redis.call('HMGET', CTX.P .. 'dec:' .. rid, 'need', 'src', 'tgt', 'urg', 'due',
                       'ended', 'tmpl', 'fwd')
  return {need = v[1], src = v[2], tgt = v[3], urg = v[4], due = v[5], ended = v[6],
          tmpl = v[7], fwd = v[8]}
end
)lua";

std::string Script(absl::string_view body) { return absl::StrCat(kLuaLib, body); }

// Receiver scripts: KEYS[1] seen, ARGV[1] retention; then ARGV[2] prefix, [3] shard,
// [4] now, [5] base event id, [6] actor bytes, [7] outbox, [8] request id, then own args,
// and LAST the request's parties (PartiesArg: issuing authority, issuing state, executing
// authority, requested state, notified authority, each followed by '\n'; '' = none), which
// the prologue pops and records in the need-to-know hash parties:<rid> (non-empty values
// only).
constexpr char kReceiverPrologue[] = R"lua(
CTX.P, CTX.shard, CTX.now, CTX.actor, CTX.outbox = ARGV[2], ARGV[3], ARGV[4], ARGV[6], ARGV[7]
EV.base = ARGV[5]
local rid = ARGV[8]
local parties_arg = table.remove(ARGV)
if parties_arg ~= '' then
  local j, names = 1, {'ia', 'is', 'ea', 'rs', 'na'}
  for v in string.gmatch(parties_arg, '([^\n]*)\n') do
    if names[j] and v ~= '' then redis.call('HSET', CTX.P .. 'parties:' .. rid, names[j], v) end
    j = j + 1
  end
end
)lua";

// ARGV[9] decision pb, [10] need, [11] src, [12] tgt, [13] urg, [14] unroutable,
// [15] template, [16] status, [17] reason code, [18] routing_decided payload bytes,
// [19] the status once translated (FORWARDED, SENT_TO_PROVIDER)
const LuaScript& DecideScript() {
  static const LuaScript* s =
      new LuaScript(common::ReceiverScript(Script(absl::StrCat(kReceiverPrologue, R"lua(
local dkey = CTX.P .. 'dec:' .. rid
local ended = redis.call('HGET', dkey, 'ended') == '1'
redis.call('HSET', dkey, 'pb', ARGV[9], 'need', ARGV[10], 'src', ARGV[11], 'tgt', ARGV[12],
           'urg', ARGV[13], 'unroutable', ARGV[14], 'tmpl', ARGV[15], 'fwd', ARGV[19],
           'updated', CTX.now)
redis.call('HSETNX', dkey, 'due', NO_DUE)
if ARGV[14] == '1' and not ended then
  redis.call('ZADD', CTX.P .. 'unroutable', CTX.now, rid)
else
  redis.call('ZREM', CTX.P .. 'unroutable', rid)
end
local status = ARGV[16]
if ended then status = '0' end
emit(rid, ARGV[15], 50, status, ARGV[17], ARGV[18])
local dec = decision(rid)
-- A new decision into another language (or none) cancels queued jobs of the old one.
for _, jid in ipairs(redis.call('SMEMBERS', CTX.P .. 'jobs:' .. rid)) do
  local h = job_get(jid)
  if h and h.status == '1' and (dec.need ~= '1' or h.tgt ~= dec.tgt) then
    dequeue(jid, h)
    set_status(jid, h, '5')
    emit(rid, dec.tmpl, 55, 0, 'ROUTING_CHANGED', job_payload(jid, h))
  end
end
local created = 0
if dec.need == '1' and not ended then
  local docs = redis.call('HGETALL', CTX.P .. 'docs:' .. rid)
  for i = 1, #docs, 2 do
    local lang = string.match(docs[i + 1], '^([^\n]*)')
    if string.lower(lang) == string.lower(dec.src) then
      created = created + create_job(rid, docs[i], dec)
    end
  end
end
return {'handled', created}
)lua"))));
  return *s;
}

// ARGV[9] document id, [10] language, [11] sha256
const LuaScript& DocumentScript() {
  static const LuaScript* s =
      new LuaScript(common::ReceiverScript(Script(absl::StrCat(kReceiverPrologue, R"lua(
redis.call('HSET', CTX.P .. 'docs:' .. rid, ARGV[9], ARGV[10] .. '\n' .. ARGV[11])
local dec = decision(rid)
local created = 0
if dec.need == '1' and dec.ended ~= '1' and string.lower(ARGV[10]) == string.lower(dec.src) then
  created = create_job(rid, ARGV[9], dec)
end
return {'handled', created}
)lua"))));
  return *s;
}

// ARGV[9] deadline id, [10] due ms ('' removes it)
const LuaScript& DeadlineScript() {
  static const LuaScript* s =
      new LuaScript(common::ReceiverScript(Script(absl::StrCat(kReceiverPrologue, R"lua(
local dl = CTX.P .. 'dl:' .. rid
if ARGV[10] == '' then
  redis.call('HDEL', dl, ARGV[9])
else
  redis.call('HSET', dl, ARGV[9], ARGV[10])
end
local earliest = NO_DUE
for _, v in ipairs(redis.call('HVALS', dl)) do
  if tonumber(v) < earliest then earliest = tonumber(v) end
end
local due = string.format('%.0f', earliest)
redis.call('HSET', CTX.P .. 'dec:' .. rid, 'due', due)
for _, jid in ipairs(redis.call('SMEMBERS', CTX.P .. 'jobs:' .. rid)) do
  local h = job_get(jid)
  if h and h.due ~= due and (h.status == '1' or h.status == '2') then
    h.due = due
    redis.call('HSET', CTX.P .. 'job:' .. jid, 'due', due)
    if h.status == '1' then enqueue(jid, h) else hold(jid, h) end
  end
end
return {'handled'}
)lua"))));
  return *s;
}

// ARGV[9] reason code
const LuaScript& EndScript() {
  static const LuaScript* s =
      new LuaScript(common::ReceiverScript(Script(absl::StrCat(kReceiverPrologue, R"lua(
redis.call('HSET', CTX.P .. 'dec:' .. rid, 'ended', '1')
redis.call('ZREM', CTX.P .. 'unroutable', rid)
local dec = decision(rid)
local cancelled = 0
for _, jid in ipairs(redis.call('SMEMBERS', CTX.P .. 'jobs:' .. rid)) do
  local h = job_get(jid)
  if h and (h.status == '1' or h.status == '2') then
    if h.status == '1' then dequeue(jid, h) else unhold(jid, h) end
    redis.call('ZREM', CTX.P .. 'leases', jid)
    set_status(jid, h, '5')
    emit(rid, dec.tmpl, 55, 0, ARGV[9], job_payload(jid, h))
    cancelled = cancelled + 1
  end
end
return {'handled', cancelled}
)lua"))));
  return *s;
}

// Retention (REQUEST_ERASED): intake erased the request's personal data, so everything
// routing keeps about it goes: decision, documents, deadlines, sequence, and every job
// (queued, held, finished or dead-lettered) with its queue, lease and dead-letter entries.
// Emits nothing. A later event about the request finds no decision and records nothing.
const LuaScript& EraseScript() {
  static const LuaScript* s = new LuaScript(
      absl::StrCat(common::kScriptRunsWhenFull,
                   common::ReceiverScript(Script(absl::StrCat(kReceiverPrologue, R"lua(
redis.call('ZREM', CTX.P .. 'unroutable', rid)
local erased = 0
for _, jid in ipairs(redis.call('SMEMBERS', CTX.P .. 'jobs:' .. rid)) do
  local h = job_get(jid)
  if h then
    dequeue(jid, h)
    unhold(jid, h)
    redis.call('ZREM', CTX.P .. 'leases', jid)
    redis.call('ZREM', CTX.P .. 'dead', jid)
    redis.call('DEL', CTX.P .. 'job:' .. jid)
    erased = erased + 1
  end
end
redis.call('DEL', CTX.P .. 'dec:' .. rid, CTX.P .. 'seq:' .. rid, CTX.P .. 'docs:' .. rid,
           CTX.P .. 'dl:' .. rid, CTX.P .. 'jobs:' .. rid, CTX.P .. 'parties:' .. rid)
return {'handled', erased}
)lua")))));
  return *s;
}

// Non-receiver job scripts: ARGV[1] prefix, [2] shard, [3] now, [4] base event id,
// [5] actor bytes, [6] outbox, then their own.
constexpr char kJobPrologue[] = R"lua(
CTX.P, CTX.shard, CTX.now, CTX.actor, CTX.outbox = ARGV[1], ARGV[2], ARGV[3], ARGV[5], ARGV[6]
EV.base = ARGV[4]
)lua";

// Finds the best head among the pairs' queues: {score, pair} or {}.
constexpr char kBestHead[] = R"lua(
local function best_head(first)
  local best, best_score
  for i = first, #ARGV do
    local top = redis.call('ZRANGE', CTX.P .. 'q:' .. ARGV[i], 0, 0, 'WITHSCORES')
    if top[1] and (best == nil or tonumber(top[2]) < best_score) then
      best, best_score = top[1], tonumber(top[2])
    end
  end
  return best, best_score
end
)lua";

// ARGV[1] prefix, [2..] pairs. Returns {score} of the best queued job, or {}.
const LuaScript& PeekScript() {
  static const LuaScript* s = new LuaScript(Script(absl::StrCat(kBestHead, R"lua(
CTX.P = ARGV[1]
local best, best_score = best_head(2)
if best == nil then return {} end
return {string.format('%.0f', best_score)}
)lua")));
  return *s;
}

// ARGV[7] lease ms, [8] claimer, [9..] pairs "src>tgt".
// Returns {'empty'} or {'claimed', '', job fields...}
const LuaScript& ClaimScript() {
  static const LuaScript* s = new LuaScript(Script(absl::StrCat(kJobPrologue, kBestHead, R"lua(
local jid = best_head(9)
if jid == nil then return {'empty'} end
local h = job_get(jid)
dequeue(jid, h)
local exp = string.format('%.0f', tonumber(CTX.now) + tonumber(ARGV[7]))
local k = CTX.P .. 'job:' .. jid
redis.call('HINCRBY', k, 'token', 1)
redis.call('HINCRBY', k, 'attempts', 1)
redis.call('HSET', k, 'status', '2', 'by', ARGV[8], 'lb', ARGV[8], 'lease_exp', exp,
           'lease_ms', ARGV[7], 'claimed', CTX.now, 'updated', CTX.now)
redis.call('ZADD', CTX.P .. 'leases', exp, jid)
h.by = ARGV[8]
hold(jid, h)
local dec = decision(h.rid)
emit(h.rid, dec.tmpl, 52, 0, '', job_payload(jid, h))
local _, flat = job_get(jid)
return {'claimed', jid, flat}
)lua")));
  return *s;
}

// Checks the presented lease: returns nil when held, else the reply to give.
//
// Need-to-know (issue 16, item 15): a job is the business of the translator that claimed it
// last (field lb; 'by' for jobs claimed before lb existed) and of nobody else. Anyone else
// gets 'notholder', which answers exactly as 'notfound' does, before the token is looked at:
// otherwise a stale-token answer would tell a translator that another translator's job
// exists (job ids derive from request and document ids). The last claimer alone learns
// that its token is stale or its lease expired.
constexpr char kCheckLease[] = R"lua(
local function last_claimer(h)
  if h.lb ~= nil then return h.lb end
  return h.by or ''
end
local function check_lease(jid, h, token, claimer)
  if h == nil then return {'notfound'} end
  if last_claimer(h) ~= claimer then return {'notholder'} end
  if h.status ~= '2' or h.token ~= token then return {'stale', h.status} end
  if h.by ~= claimer then return {'notholder'} end
  if tonumber(h.lease_exp) < tonumber(CTX.now) then return {'expired'} end
  return nil
end
)lua";

// ARGV[7] job id, [8] token, [9] claimer, [10] lease ms ('' keeps it)
const LuaScript& HeartbeatScript() {
  static const LuaScript* s = new LuaScript(Script(absl::StrCat(kJobPrologue, kCheckLease, R"lua(
local jid = ARGV[7]
local h = job_get(jid)
local bad = check_lease(jid, h, ARGV[8], ARGV[9])
if bad then return bad end
local ms = ARGV[10]
if ms == '' then ms = h.lease_ms end
local exp = string.format('%.0f', tonumber(CTX.now) + tonumber(ms))
redis.call('HSET', CTX.P .. 'job:' .. jid, 'lease_exp', exp, 'lease_ms', ms, 'updated', CTX.now)
redis.call('ZADD', CTX.P .. 'leases', exp, jid)
local _, flat = job_get(jid)
return {'ok', jid, flat}
)lua")));
  return *s;
}

// ARGV[7] job id, [8] token, [9] claimer, [10] translated doc, [11] sha256
// Returns {'completed'|'replayed', jid, job fields, request_done (0|1)} or an error word.
const LuaScript& CompleteScript() {
  static const LuaScript* s = new LuaScript(Script(absl::StrCat(kJobPrologue, kCheckLease, R"lua(
local jid = ARGV[7]
local h = job_get(jid)
if h and h.done_token == ARGV[8] and h.done_kind == 'complete' and
   last_claimer(h) == ARGV[9] then
  if h.tdoc ~= ARGV[10] then return {'conflict'} end
  local _, flat = job_get(jid)
  return {'replayed', jid, flat, 0}
end
local bad = check_lease(jid, h, ARGV[8], ARGV[9])
if bad then return bad end
redis.call('HSET', CTX.P .. 'job:' .. jid, 'status', '3', 'tdoc', ARGV[10], 'tsha', ARGV[11],
           'done_token', ARGV[8], 'done_kind', 'complete', 'updated', CTX.now)
redis.call('ZREM', CTX.P .. 'leases', jid)
unhold(jid, h)
h.tdoc = ARGV[10]
local dec = decision(h.rid)
local all_done = 1
for _, other in ipairs(redis.call('SMEMBERS', CTX.P .. 'jobs:' .. h.rid)) do
  local st = redis.call('HGET', CTX.P .. 'job:' .. other, 'status')
  if st ~= '3' and st ~= '5' then all_done = 0 end
end
local status = 0
if all_done == 1 and dec.ended ~= '1' then status = tonumber(dec.fwd) or 5 end
emit(h.rid, dec.tmpl, 53, status, '', job_payload(jid, h))
local _, flat = job_get(jid)
return {'completed', jid, flat, all_done}
)lua")));
  return *s;
}

// ARGV[7] job id, [8] token, [9] claimer, [10] failure code, [11] retryable (0|1),
// [12] max attempts. Returns {'requeued'|'dead'|'replayed', jid, job fields}.
const LuaScript& FailScript() {
  static const LuaScript* s = new LuaScript(Script(absl::StrCat(kJobPrologue, kCheckLease, R"lua(
local jid = ARGV[7]
local h = job_get(jid)
if h and h.done_token == ARGV[8] and h.done_kind == 'fail' and last_claimer(h) == ARGV[9] then
  local _, flat = job_get(jid)
  return {'replayed', jid, flat}
end
local bad = check_lease(jid, h, ARGV[8], ARGV[9])
if bad then return bad end
local k = CTX.P .. 'job:' .. jid
redis.call('ZREM', CTX.P .. 'leases', jid)
unhold(jid, h)
redis.call('HSET', k, 'fcode', ARGV[10], 'by', '', 'done_token', ARGV[8], 'done_kind', 'fail')
h.fcode = ARGV[10]
local dec = decision(h.rid)
local outcome
if ARGV[11] == '1' and tonumber(h.attempts) < tonumber(ARGV[12]) then
  set_status(jid, h, '1')
  enqueue(jid, h)
  emit(h.rid, dec.tmpl, 54, 0, ARGV[10], job_payload(jid, h))
  outcome = 'requeued'
else
  set_status(jid, h, '4')
  redis.call('ZADD', CTX.P .. 'dead', CTX.now, jid)
  emit(h.rid, dec.tmpl, 54, 0, 'DEAD_LETTER', job_payload(jid, h))
  outcome = 'dead'
end
local _, flat = job_get(jid)
return {outcome, jid, flat}
)lua")));
  return *s;
}

// ARGV[7] max attempts, [8] limit. Returns {expired, dead}.
const LuaScript& SweepScript() {
  static const LuaScript* s = new LuaScript(Script(absl::StrCat(kJobPrologue, R"lua(
local ids = redis.call('ZRANGEBYSCORE', CTX.P .. 'leases', '-inf', CTX.now, 'LIMIT', 0, ARGV[8])
local expired, dead = 0, 0
for _, jid in ipairs(ids) do
  redis.call('ZREM', CTX.P .. 'leases', jid)
  local h = job_get(jid)
  if h and h.status == '2' and tonumber(h.lease_exp) <= tonumber(CTX.now) then
    expired = expired + 1
    local dec = decision(h.rid)
    unhold(jid, h)
    redis.call('HSET', CTX.P .. 'job:' .. jid, 'by', '', 'fcode', 'LEASE_EXPIRED')
    h.fcode = 'LEASE_EXPIRED'
    if tonumber(h.attempts) >= tonumber(ARGV[7]) then
      set_status(jid, h, '4')
      redis.call('ZADD', CTX.P .. 'dead', CTX.now, jid)
      emit(h.rid, dec.tmpl, 54, 0, 'DEAD_LETTER', job_payload(jid, h))
      dead = dead + 1
    else
      set_status(jid, h, '1')
      enqueue(jid, h)
      emit(h.rid, dec.tmpl, 54, 0, 'LEASE_EXPIRED', job_payload(jid, h))
    end
  end
end
return {expired, dead}
)lua")));
  return *s;
}

// ARGV[1] prefix. Returns {dead count, unroutable count, pair, depth, oldest ms, ...}.
const LuaScript& StatsScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local P = ARGV[1]
local out = {redis.call('ZCARD', P .. 'dead'), redis.call('ZCARD', P .. 'unroutable')}
for _, pair in ipairs(redis.call('SMEMBERS', P .. 'pairs')) do
  local oldest = redis.call('ZRANGE', P .. 'qa:' .. pair, 0, 0, 'WITHSCORES')
  out[#out + 1] = pair
  out[#out + 1] = redis.call('ZCARD', P .. 'q:' .. pair)
  out[#out + 1] = oldest[2] or ''
end
return out
)lua");
  return *s;
}

// ARGV[1] prefix, [2] request id. Returns {jid, fields, jid, fields, ...}.
const LuaScript& ListScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local out = {}
local ids = redis.call('SMEMBERS', ARGV[1] .. 'jobs:' .. ARGV[2])
table.sort(ids)
for _, jid in ipairs(ids) do
  out[#out + 1] = jid
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. 'job:' .. jid)
end
return out
)lua");
  return *s;
}

// One shard's page of a translator's queue. ARGV[1] prefix, [2] 'claimable' | 'held',
// [3] holder, [4] page size + 1, [5] cursor score ('' from the start), [6] cursor job id,
// [7] number of score ranges R, then R (low, high) pairs in ascending order, then the
// source-language filter count S and S tags, then the target-language count T and T tags
// (lower case; 0 for all). Returns {jid, score, fields, ...}: the first (page size + 1)
// jobs after the cursor in (score, id) order.
// Bounded work: each index is entered by rank (ZCOUNT, then a binary search among jobs of
// equal score, O(log n) ZRANGE calls) and read for at most a page; the claimable queues
// are the shard's language pairs (the `pairs` set). Only the held index, whose size is the
// jobs one translator holds, is filtered by language while read.
const LuaScript& ListQueueScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local P, kind, holder, need = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local cs, cj = ARGV[5], ARGV[6]
local i = 7
local nr = tonumber(ARGV[i]); i = i + 1
local ranges = {}
for _ = 1, nr do ranges[#ranges + 1] = {ARGV[i], ARGV[i + 1]}; i = i + 2 end
-- Reads a count and that many tags at ARGV[i]; nil (no filter) for none.
local function set_of()
  local n = tonumber(ARGV[i]); i = i + 1
  if n == 0 then return nil end
  local out = {}
  for _ = 1, n do out[ARGV[i]] = true; i = i + 1 end
  return out
end
local srcs = set_of()
local tgts = set_of()
-- Byte order, as Redis orders members of equal score (Lua's '<' follows the locale).
local function bytes_lt(a, b)
  local n = math.min(#a, #b)
  for k = 1, n do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function pair_ok(src, tgt)
  return (srcs == nil or srcs[src]) and (tgts == nil or tgts[tgt])
end
-- First rank strictly after (cs, cj) in (score, member) order.
local function first_after(key)
  if cs == '' then return 0 end
  local lo = redis.call('ZCOUNT', key, '-inf', '(' .. cs)
  local hi = redis.call('ZCOUNT', key, '-inf', cs)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local m = redis.call('ZRANGE', key, mid, mid)[1]
    if not bytes_lt(cj, m) then lo = mid + 1 else hi = mid end
  end
  return lo
end
local found = {}
-- Up to `need` members of `key` after the cursor within the ranges; `accept` filters.
local function collect(key, accept)
  local after = first_after(key)
  local got = 0
  for _, r in ipairs(ranges) do
    if got >= need then break end
    local start = math.max(after, redis.call('ZCOUNT', key, '-inf', '(' .. r[1]))
    local stop = redis.call('ZCOUNT', key, '-inf', r[2])
    while got < need and start < stop do
      local last = math.min(stop, start + need) - 1
      local page = redis.call('ZRANGE', key, start, last, 'WITHSCORES')
      for j = 1, #page, 2 do
        if got < need and accept(page[j]) then
          found[#found + 1] = {page[j], page[j + 1]}
          got = got + 1
        end
      end
      start = last + 1
    end
  end
end
if kind == 'claimable' then
  for _, pair in ipairs(redis.call('SMEMBERS', P .. 'pairs')) do
    local src, tgt = string.match(pair, '^(.*)>(.*)$')
    if src and pair_ok(src, tgt) then
      collect(P .. 'q:' .. pair, function() return true end)
    end
  end
else
  collect(P .. 'held:' .. holder, function(jid)
    local v = redis.call('HMGET', P .. 'job:' .. jid, 'src', 'tgt')
    return v[1] and pair_ok(string.lower(v[1]), string.lower(v[2] or ''))
  end)
end
table.sort(found, function(a, b)
  local sa, sb = tonumber(a[2]), tonumber(b[2])
  if sa ~= sb then return sa < sb end
  return bytes_lt(a[1], b[1])
end)
local out = {}
for k = 1, math.min(#found, need) do
  out[#out + 1] = found[k][1]
  out[#out + 1] = string.format('%.0f', tonumber(found[k][2]))
  out[#out + 1] = redis.call('HGETALL', P .. 'job:' .. found[k][1])
end
return out
)lua");
  return *s;
}

int64_t ToInt(const std::map<std::string, std::string>& m, const std::string& k) {
  int64_t v = 0;
  auto it = m.find(k);
  if (it != m.end()) (void)absl::SimpleAtoi(it->second, &v);
  return v;
}
std::string ToStr(const std::map<std::string, std::string>& m, const std::string& k) {
  auto it = m.find(k);
  return it == m.end() ? "" : it->second;
}
google::protobuf::Timestamp Ts(int64_t ms) { return TimeUtil::MillisecondsToTimestamp(ms); }

constexpr int64_t kNoDue = 9000000000000;

v1::TranslationJob JobFromFields(const std::string& id, const RedisReply& flat) {
  std::map<std::string, std::string> m;
  for (size_t i = 0; i + 1 < flat.elements.size(); i += 2) {
    m[flat.elements[i].str] = flat.elements[i + 1].str;
  }
  v1::TranslationJob j;
  j.set_id(id);
  j.set_request_id(ToStr(m, "rid"));
  j.set_document_id(ToStr(m, "doc"));
  j.set_source_language(ToStr(m, "src"));
  j.set_target_language(ToStr(m, "tgt"));
  j.set_status(static_cast<v1::TranslationJobStatus>(ToInt(m, "status")));
  const int64_t due = ToInt(m, "due");
  if (due > 0 && due < kNoDue) *j.mutable_due_time() = Ts(due);
  j.set_urgency(static_cast<common::v1::Urgency>(ToInt(m, "urg")));
  j.set_attempts(static_cast<int32_t>(ToInt(m, "attempts")));
  j.set_lease_token(ToInt(m, "token"));
  if (j.status() == v1::TRANSLATION_JOB_STATUS_CLAIMED) {
    j.set_claimed_by(ToStr(m, "by"));
    *j.mutable_lease_expire_time() = Ts(ToInt(m, "lease_exp"));
  }
  j.set_translated_document_id(ToStr(m, "tdoc"));
  j.set_translated_document_sha256(ToStr(m, "tsha"));
  j.set_failure_code(ToStr(m, "fcode"));
  *j.mutable_create_time() = Ts(ToInt(m, "created"));
  *j.mutable_update_time() = Ts(ToInt(m, "updated"));
  return j;
}

// The template every event about the request starts from (see kLuaLib).
std::string Template(const Event& trigger) {
  Event t;
  t.set_request_id(trigger.request_id());
  t.set_trace_id(trigger.trace_id());
  t.set_instrument(trigger.instrument());
  t.set_source(kEmitter);
  *t.mutable_request() = trigger.request();
  return t.SerializeAsString();
}

std::string ServiceActor() {
  Event e;
  e.mutable_actor()->set_service(kServiceActor);
  return e.SerializeAsString();
}

std::string TranslatorActor(const std::string& authority) {
  Event e;
  e.mutable_actor()->mutable_authority()->set_authority_id(authority);
  e.mutable_actor()->set_role(common::v1::AUTHORITY_ROLE_TRANSLATOR);
  return e.SerializeAsString();
}

std::string Ms(absl::Time t) { return absl::StrCat(absl::ToUnixMillis(t)); }

absl::Status LeaseError(const RedisReply& r) {
  const std::string& w = r.elements.empty() ? "" : r.elements[0].str;
  if (w == "notfound") return absl::NotFoundError("no translation job has that id");
  if (w == "stale") {
    return absl::FailedPreconditionError(
        "the lease token is stale: the job is no longer held under it");
  }
  if (w == "expired") {
    return absl::FailedPreconditionError("the lease expired; the job returns to its queue");
  }
  // Another translator's job is answered like a missing one: a translator reaches only the
  // jobs it holds, and must not learn that a job id exists.
  if (w == "notholder") return absl::NotFoundError("no translation job has that id");
  if (w == "conflict") {
    return absl::AlreadyExistsError(
        "the job was completed under this token with another translated document");
  }
  return absl::InternalError(absl::StrCat("unexpected store reply '", w, "'"));
}

}  // namespace

std::string RedisRoutingStore::KeyPrefix(int shard) {
  return absl::StrCat(common::Sharding::Prefix(shard), "rt:");
}

RedisRoutingStore::RedisRoutingStore(common::RedisClient& redis, common::Sharding sharding)
    : redis_(redis), sharding_(sharding) {}

namespace {
// The receiver scripts' common arguments (see kReceiverPrologue).
std::vector<std::string> ReceiverArgs(const common::Dedupe& dedupe, int shard, absl::Time now,
                                      const Event& trigger) {
  return {dedupe.retention_ms,
          RedisRoutingStore::KeyPrefix(shard),
          absl::StrCat(shard),
          Ms(now),
          common::NewUlid(now),
          ServiceActor(),
          common::EventKeys::Outbox(shard, kEmitter),
          trigger.request_id()};
}

// The parties argument every receiver script takes last (see kReceiverPrologue).
std::string PartiesArg(const Event& trigger, const std::string& executing_fallback = "",
                       const std::string& notified_fallback = "") {
  const common::RequestParties p = common::PartiesOf(trigger.request());
  return absl::StrCat(
      p.issuing_authority_id, "\n", p.issuing_state, "\n",
      p.executing_authority_id.empty() ? executing_fallback : p.executing_authority_id, "\n",
      p.requested_state, "\n",
      p.notified_authority_id.empty() ? notified_fallback : p.notified_authority_id, "\n");
}
}  // namespace

void RedisRoutingStore::RecordDecision(const Event& trigger, const v1::RoutingDecision& decision,
                                       common::v1::RequestStatus status,
                                       const common::Dedupe& dedupe, absl::Time now,
                                       StoreCallback<Outcome> done) {
  auto shard = sharding_.ShardOf("rq", trigger.request_id());
  if (!shard.ok()) return done(shard.status());
  Event payload;
  auto* rd = payload.mutable_routing_decided();
  rd->set_translation_required(decision.translation_required());
  rd->set_target_language(decision.target_language());
  *rd->mutable_competent_authority() = decision.competent_authority();
  rd->set_channel(decision.channel());
  rd->set_registry_version(decision.registry_version());
  if (decision.has_central_authority()) {
    *rd->mutable_central_authority() = decision.central_authority();
  }
  rd->set_competent_authority_time_zone(decision.competent_authority_time_zone());
  if (decision.has_notified_authority()) {
    *rd->mutable_notified_authority() = decision.notified_authority();
  }
  std::string reason_code;
  if (decision.unroutable() && decision.reasons_size() > 0) {
    reason_code = absl::StrCat("UNROUTABLE_", decision.reasons(decision.reasons_size() - 1).code());
  }
  auto args = ReceiverArgs(dedupe, *shard, now, trigger);
  args.insert(args.end(),
              {decision.SerializeAsString(), decision.translation_required() ? "1" : "0",
               trigger.request().source_language(), decision.target_language(),
               absl::StrCat(static_cast<int>(trigger.request().urgency())),
               decision.unroutable() ? "1" : "0", Template(trigger),
               absl::StrCat(static_cast<int>(status)), reason_code, payload.SerializeAsString(),
               absl::StrCat(static_cast<int>(ForwardStatusFor(decision))),
               PartiesArg(trigger, decision.competent_authority().authority_id(),
                          decision.notified_authority().authority_id())});
  redis_.Eval(DecideScript(), {dedupe.seen_key}, std::move(args),
              [done](absl::StatusOr<RedisReply> r) { done(common::ReceiverOutcome(r)); });
}

void RedisRoutingStore::AddDocument(const Event& trigger, const common::Dedupe& dedupe,
                                    absl::Time now, StoreCallback<Outcome> done) {
  auto shard = sharding_.ShardOf("rq", trigger.request_id());
  if (!shard.ok()) return done(shard.status());
  auto args = ReceiverArgs(dedupe, *shard, now, trigger);
  args.insert(args.end(), {trigger.document().document_id(), trigger.document().language(),
                           trigger.document().sha256(), PartiesArg(trigger)});
  redis_.Eval(DocumentScript(), {dedupe.seen_key}, std::move(args),
              [done](absl::StatusOr<RedisReply> r) { done(common::ReceiverOutcome(r)); });
}

void RedisRoutingStore::UpdateDeadline(const Event& trigger, std::optional<absl::Time> due,
                                       const common::Dedupe& dedupe, StoreCallback<Outcome> done) {
  auto shard = sharding_.ShardOf("rq", trigger.request_id());
  if (!shard.ok()) return done(shard.status());
  // The occur time is only used for ids here: deadline changes emit no events.
  auto args = ReceiverArgs(dedupe, *shard, absl::UnixEpoch(), trigger);
  args.insert(args.end(),
              {trigger.deadline().deadline_id(), due ? Ms(*due) : "", PartiesArg(trigger)});
  redis_.Eval(DeadlineScript(), {dedupe.seen_key}, std::move(args),
              [done](absl::StatusOr<RedisReply> r) { done(common::ReceiverOutcome(r)); });
}

void RedisRoutingStore::EndRequest(const Event& trigger, const common::Dedupe& dedupe,
                                   absl::Time now, StoreCallback<Outcome> done) {
  auto shard = sharding_.ShardOf("rq", trigger.request_id());
  if (!shard.ok()) return done(shard.status());
  auto args = ReceiverArgs(dedupe, *shard, now, trigger);
  args.push_back(absl::StrCat("REQUEST_", common::v1::EventType_Name(trigger.type())
                                              .substr(std::string("EVENT_TYPE_REQUEST_").size())));
  args.push_back(PartiesArg(trigger));
  redis_.Eval(EndScript(), {dedupe.seen_key}, std::move(args),
              [done](absl::StatusOr<RedisReply> r) { done(common::ReceiverOutcome(r)); });
}

void RedisRoutingStore::EraseRequest(const Event& trigger, const common::Dedupe& dedupe,
                                     absl::Time now, StoreCallback<Outcome> done) {
  auto shard = sharding_.ShardOf("rq", trigger.request_id());
  if (!shard.ok()) return done(shard.status());
  auto args = ReceiverArgs(dedupe, *shard, now, trigger);
  args.push_back("");  // no parties: erasure forgets them
  redis_.Eval(EraseScript(), {dedupe.seen_key}, std::move(args),
              [done](absl::StatusOr<RedisReply> r) { done(common::ReceiverOutcome(r)); });
}

void RedisRoutingStore::GetDecision(const std::string& request_id,
                                    StoreCallback<v1::RoutingDecision> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"HGET", absl::StrCat(KeyPrefix(*shard), "dec:", request_id), "pb"},
                 [done](absl::StatusOr<RedisReply> r) {
                   if (!r.ok()) return done(r.status());
                   if (r->is_nil()) {
                     return done(absl::NotFoundError("no routing decision for that request yet"));
                   }
                   v1::RoutingDecision d;
                   if (!d.ParseFromString(r->str)) {
                     return done(absl::InternalError("stored decision does not parse"));
                   }
                   done(std::move(d));
                 });
}

void RedisRoutingStore::GetParties(const std::string& request_id,
                                   StoreCallback<std::optional<common::RequestParties>> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  common::LoadRequestParties(redis_, absl::StrCat(KeyPrefix(*shard), "parties:", request_id),
                             std::move(done));
}

void RedisRoutingStore::GetJob(const std::string& job_id, StoreCallback<v1::TranslationJob> done) {
  auto shard = sharding_.ShardOf("tj", job_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"HGETALL", absl::StrCat(KeyPrefix(*shard), "job:", job_id)},
                 [done, job_id](absl::StatusOr<RedisReply> r) {
                   if (!r.ok()) return done(r.status());
                   if (r->elements.empty()) {
                     return done(absl::NotFoundError("no translation job has that id"));
                   }
                   done(JobFromFields(job_id, *r));
                 });
}

void RedisRoutingStore::ListJobsOfRequest(const std::string& request_id,
                                          StoreCallback<std::vector<v1::TranslationJob>> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Eval(ListScript(), {}, {KeyPrefix(*shard), request_id},
              [done](absl::StatusOr<RedisReply> r) {
                if (!r.ok()) return done(r.status());
                std::vector<v1::TranslationJob> jobs;
                for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
                  jobs.push_back(JobFromFields(r->elements[i].str, r->elements[i + 1]));
                }
                done(std::move(jobs));
              });
}

namespace {
// Score bands of the queues (see `score` in kLuaLib): emergency, urgent, then the rest.
constexpr int64_t kBand = 10000000000000;
int BandOf(common::v1::Urgency u) {
  if (u == common::v1::URGENCY_EMERGENCY) return 0;
  if (u == common::v1::URGENCY_URGENT) return 1;
  return 2;
}

struct QueueEntry {
  int64_t score;
  std::string id;
  v1::TranslationJob job;
};

// One listing across shards: every shard answers its first (page size + 1) jobs after the
// cursor at once; the merge keeps the page size and says whether more follow.
struct ListQueueRun : std::enable_shared_from_this<ListQueueRun> {
  QueueListSpec spec;
  StoreCallback<QueueListPage> done;
  absl::Mutex mu;
  int pending = 0;
  absl::Status error;
  std::vector<QueueEntry> entries;

  void Finish() {
    if (!error.ok()) return done(error);
    std::sort(entries.begin(), entries.end(), [](const QueueEntry& a, const QueueEntry& b) {
      return std::tie(a.score, a.id) < std::tie(b.score, b.id);
    });
    QueueListPage page;
    const size_t size = static_cast<size_t>(spec.page_size);
    for (size_t i = 0; i < entries.size() && i < size; ++i) {
      page.jobs.push_back(std::move(entries[i].job));
    }
    if (entries.size() > size) {
      page.next = QueueCursor{entries[size - 1].score, entries[size - 1].id};
    }
    done(std::move(page));
  }
};
}  // namespace

void RedisRoutingStore::ListQueue(const QueueListSpec& spec, StoreCallback<QueueListPage> done) {
  if (spec.page_size <= 0) return done(absl::InvalidArgumentError("page size must be positive"));
  std::vector<std::string> tail;
  tail.push_back(spec.held ? "held" : "claimable");
  tail.push_back(spec.holder);
  tail.push_back(absl::StrCat(spec.page_size + 1));
  tail.push_back(spec.after ? absl::StrCat(spec.after->score) : "");
  tail.push_back(spec.after ? spec.after->id : "");
  std::vector<int> bands = {0, 1, 2};
  if (spec.urgency != common::v1::URGENCY_UNSPECIFIED) bands = {BandOf(spec.urgency)};
  tail.push_back(absl::StrCat(bands.size()));
  for (int band : bands) {
    int64_t high = kBand - 1;
    if (spec.due_before) high = std::min<int64_t>(absl::ToUnixMillis(*spec.due_before), kNoDue - 1);
    tail.push_back(absl::StrCat(band * kBand));
    tail.push_back(absl::StrCat(band * kBand + std::max<int64_t>(high, -1)));
  }
  tail.push_back(absl::StrCat(spec.sources.size()));
  for (const auto& l : spec.sources) tail.push_back(absl::AsciiStrToLower(l));
  tail.push_back(absl::StrCat(spec.targets.size()));
  for (const auto& l : spec.targets) tail.push_back(absl::AsciiStrToLower(l));

  auto run = std::make_shared<ListQueueRun>();
  run->spec = spec;
  run->done = std::move(done);
  const int shards = sharding_.shard_count();
  run->pending = shards;
  for (int shard = 0; shard < shards; ++shard) {
    std::vector<std::string> args = {KeyPrefix(shard)};
    args.insert(args.end(), tail.begin(), tail.end());
    redis_.Eval(ListQueueScript(), {}, std::move(args), [run](absl::StatusOr<RedisReply> r) {
      bool last;
      {
        absl::MutexLock lock(&run->mu);
        if (!r.ok()) {
          run->error = r.status();
        } else {
          for (size_t i = 0; i + 2 < r->elements.size(); i += 3) {
            QueueEntry e;
            e.id = r->elements[i].str;
            (void)absl::SimpleAtoi(r->elements[i + 1].str, &e.score);
            e.job = JobFromFields(e.id, r->elements[i + 2]);
            run->entries.push_back(std::move(e));
          }
        }
        last = --run->pending == 0;
      }
      if (last) run->Finish();
    });
  }
}

namespace {
std::vector<std::string> JobArgs(int shard, absl::Time now, const std::string& actor) {
  return {RedisRoutingStore::KeyPrefix(shard),
          absl::StrCat(shard),
          Ms(now),
          common::NewUlid(now),
          actor,
          common::EventKeys::Outbox(shard, kEmitter)};
}

// One claim across shards: peeks every shard's best queued job at once, then claims in
// the order of those scores, moving on when another claimer got there first. Each shard is
// asked at most twice (peek, claim): bounded by the shard count, never a scan of queues.
struct ClaimRun : std::enable_shared_from_this<ClaimRun> {
  common::RedisClient* redis;
  ClaimSpec spec;
  absl::Time now;
  StoreCallback<v1::TranslationJob> done;
  std::vector<std::string> pair_args;
  absl::Mutex mu;
  int pending = 0;
  absl::Status error;
  std::vector<std::pair<double, int>> candidates;  // (score, shard)
  size_t next = 0;

  void Peek(int shards) {
    pending = shards;
    for (int s = 0; s < shards; ++s) {
      std::vector<std::string> args = {RedisRoutingStore::KeyPrefix(s)};
      args.insert(args.end(), pair_args.begin(), pair_args.end());
      redis->Eval(PeekScript(), {}, std::move(args),
                  [self = shared_from_this(), s](absl::StatusOr<RedisReply> r) {
                    bool last;
                    {
                      absl::MutexLock lock(&self->mu);
                      if (!r.ok()) {
                        self->error = r.status();
                      } else if (!r->elements.empty()) {
                        double score = 0;
                        (void)absl::SimpleAtod(r->elements[0].str, &score);
                        self->candidates.push_back({score, s});
                      }
                      last = --self->pending == 0;
                    }
                    if (last) {
                      std::sort(self->candidates.begin(), self->candidates.end());
                      self->ClaimNext();
                    }
                  });
    }
  }

  void ClaimNext() {
    if (next >= candidates.size()) {
      if (!error.ok()) return done(error);
      return done(absl::NotFoundError("no translation job is queued for those languages"));
    }
    const int shard = candidates[next++].second;
    auto args = JobArgs(shard, now, TranslatorActor(spec.claimer));
    args.push_back(absl::StrCat(absl::ToInt64Milliseconds(spec.lease)));
    args.push_back(spec.claimer);
    args.insert(args.end(), pair_args.begin(), pair_args.end());
    redis->Eval(ClaimScript(), {}, std::move(args),
                [self = shared_from_this()](absl::StatusOr<RedisReply> r) {
                  if (!r.ok()) {
                    self->error = r.status();
                    return self->ClaimNext();
                  }
                  if (r->elements.size() >= 3 && r->elements[0].str == "claimed") {
                    return self->done(JobFromFields(r->elements[1].str, r->elements[2]));
                  }
                  self->ClaimNext();
                });
  }
};
}  // namespace

// Claim idempotency: a ledger entry in the shard of (claimer, request_id), taken as
// 'pending' before the claim and set to the job id after it. The claim itself is atomic in
// the job's shard; the ledger cannot join that step (another shard), so a crash between the
// two leaves a 'pending' entry that expires after kClaimPendingTtl: the retry then claims
// anew, and the job claimed first returns to its queue when its lease runs out.
constexpr absl::Duration kClaimPendingTtl = absl::Seconds(30);
constexpr absl::Duration kClaimLedgerTtl = absl::Hours(24);

void RedisRoutingStore::Claim(const ClaimSpec& spec, absl::Time now,
                              StoreCallback<v1::TranslationJob> done) {
  if (spec.request_id.empty()) return ClaimNow(spec, now, std::move(done));
  const std::string stable = absl::StrCat(spec.claimer, "\n", spec.request_id);
  const std::string key =
      absl::StrCat(KeyPrefix(sharding_.ShardFor(stable)), "claimidem:", common::Sha1Hex(stable));
  redis_.Command(
      {"SET", key, "pending", "NX", "PX",
       absl::StrCat(absl::ToInt64Milliseconds(kClaimPendingTtl))},
      [this, spec, now, done, key](absl::StatusOr<RedisReply> set) {
        if (!set.ok()) return done(set.status());
        if (set->is_nil()) {  // seen before
          return redis_.Command({"GET", key}, [this, done](absl::StatusOr<RedisReply> got) {
            if (!got.ok()) return done(got.status());
            if (got->is_nil() || got->str == "pending") {
              return done(absl::AbortedError("a claim with this request_id is in progress; retry"));
            }
            GetJob(got->str, done);
          });
        }
        ClaimNow(spec, now, [this, done, key](absl::StatusOr<v1::TranslationJob> job) {
          std::vector<std::string> after =
              job.ok() ? std::vector<std::string>{"SET", key, job->id(), "PX",
                                                  absl::StrCat(
                                                      absl::ToInt64Milliseconds(kClaimLedgerTtl))}
                       : std::vector<std::string>{"DEL", key};
          // The claim stands whatever the ledger write does: a lost entry only makes a
          // retry claim anew.
          redis_.Command(std::move(after), [done, job](absl::StatusOr<RedisReply>) { done(job); });
        });
      });
}

void RedisRoutingStore::ClaimNow(const ClaimSpec& spec, absl::Time now,
                                 StoreCallback<v1::TranslationJob> done) {
  auto run = std::make_shared<ClaimRun>();
  run->redis = &redis_;
  run->spec = spec;
  run->now = now;
  run->done = std::move(done);
  for (const auto& [src, tgt] : spec.pairs) {
    run->pair_args.push_back(absl::AsciiStrToLower(absl::StrCat(src, ">", tgt)));
  }
  run->Peek(sharding_.shard_count());
}

void RedisRoutingStore::Heartbeat(const std::string& job_id, int64_t token,
                                  const std::string& claimer, absl::Duration lease, absl::Time now,
                                  StoreCallback<v1::TranslationJob> done) {
  auto shard = sharding_.ShardOf("tj", job_id);
  if (!shard.ok()) return done(shard.status());
  auto args = JobArgs(*shard, now, TranslatorActor(claimer));
  args.insert(args.end(),
              {job_id, absl::StrCat(token), claimer,
               lease > absl::ZeroDuration() ? absl::StrCat(absl::ToInt64Milliseconds(lease)) : ""});
  redis_.Eval(HeartbeatScript(), {}, std::move(args), [done](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return done(r.status());
    if (r->elements.size() >= 3 && r->elements[0].str == "ok") {
      return done(JobFromFields(r->elements[1].str, r->elements[2]));
    }
    done(LeaseError(*r));
  });
}

void RedisRoutingStore::Complete(const std::string& job_id, int64_t token,
                                 const std::string& claimer,
                                 const std::string& translated_document_id,
                                 const std::string& sha256, absl::Time now,
                                 StoreCallback<CompleteResult> done) {
  auto shard = sharding_.ShardOf("tj", job_id);
  if (!shard.ok()) return done(shard.status());
  auto args = JobArgs(*shard, now, TranslatorActor(claimer));
  args.insert(args.end(), {job_id, absl::StrCat(token), claimer, translated_document_id, sha256});
  redis_.Eval(CompleteScript(), {}, std::move(args), [done, now](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return done(r.status());
    const std::string w = r->elements.empty() ? "" : r->elements[0].str;
    if ((w == "completed" || w == "replayed") && r->elements.size() >= 4) {
      CompleteResult out;
      out.job = JobFromFields(r->elements[1].str, r->elements[2]);
      out.replayed = w == "replayed";
      out.request_done = r->elements[3].integer == 1;
      out.turnaround =
          now - absl::FromUnixMillis(TimeUtil::TimestampToMilliseconds(out.job.create_time()));
      return done(std::move(out));
    }
    done(LeaseError(*r));
  });
}

void RedisRoutingStore::Fail(const std::string& job_id, int64_t token, const std::string& claimer,
                             const std::string& failure_code, bool retryable, int max_attempts,
                             absl::Time now, StoreCallback<FailResult> done) {
  auto shard = sharding_.ShardOf("tj", job_id);
  if (!shard.ok()) return done(shard.status());
  auto args = JobArgs(*shard, now, TranslatorActor(claimer));
  args.insert(args.end(), {job_id, absl::StrCat(token), claimer, failure_code,
                           retryable ? "1" : "0", absl::StrCat(max_attempts)});
  redis_.Eval(FailScript(), {}, std::move(args), [done](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return done(r.status());
    const std::string w = r->elements.empty() ? "" : r->elements[0].str;
    if ((w == "requeued" || w == "dead" || w == "replayed") && r->elements.size() >= 3) {
      FailResult out;
      out.job = JobFromFields(r->elements[1].str, r->elements[2]);
      out.replayed = w == "replayed";
      out.dead_lettered = w == "dead";
      return done(std::move(out));
    }
    done(LeaseError(*r));
  });
}

void RedisRoutingStore::SweepExpiredLeases(int shard, int max_attempts, int limit, absl::Time now,
                                           StoreCallback<SweepResult> done) {
  auto args = JobArgs(shard, now, ServiceActor());
  args.insert(args.end(), {absl::StrCat(max_attempts), absl::StrCat(limit)});
  redis_.Eval(SweepScript(), {}, std::move(args), [done](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return done(r.status());
    SweepResult out;
    if (r->elements.size() >= 2) {
      out.expired = static_cast<int>(r->elements[0].integer);
      out.dead_lettered = static_cast<int>(r->elements[1].integer);
    }
    done(out);
  });
}

void RedisRoutingStore::Stats(int shard, StoreCallback<ShardStats> done) {
  redis_.Eval(StatsScript(), {}, {KeyPrefix(shard)}, [done](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return done(r.status());
    ShardStats out;
    if (r->elements.size() < 2) return done(absl::InternalError("bad stats reply"));
    out.dead_letters = r->elements[0].integer;
    out.unroutable = r->elements[1].integer;
    for (size_t i = 2; i + 2 < r->elements.size(); i += 3) {
      PairStats p;
      std::vector<std::string> st = absl::StrSplit(r->elements[i].str, absl::MaxSplits('>', 1));
      p.source = st[0];
      p.target = st.size() > 1 ? st[1] : "";
      p.depth = r->elements[i + 1].integer;
      int64_t oldest = 0;
      if (absl::SimpleAtoi(r->elements[i + 2].str, &oldest))
        p.oldest = absl::FromUnixMillis(oldest);
      out.pairs.push_back(std::move(p));
    }
    done(std::move(out));
  });
}

}  // namespace rogatory::routing
