#include "redis_request_store.h"

#include <algorithm>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/time_util.h"
#include "redis_document_store.h"
#include "retention.h"

namespace rogatory::intake {
namespace {

using common::LuaScript;
using common::RedisReply;
using common::Sharding;

// KEYS: req, hist, idem, idx:all, idx:status, idx:instrument, outbox
// ARGV: id, pb, fingerprint ('' = no idempotency), status, instrument, issuing_state,
//       requested_state, created_ms, etag, idempotency ttl ms, event pb, req key prefix,
//       urgency, shard prefix, issuing authority id, executing authority id ('' = none)
// Need-to-know party indexes (see common/access.h): idx:party:a:<authority id> holds the
// requests an authority issued or that are addressed to it, idx:party:s:<state> those whose
// issuing or requested state it is (a central authority's reach), scored by creation.
// Returns {'created'} | {'replayed', pb} | {'conflict'} | {'collision'}
// Refused whole by a full Redis (it only grows memory).
const LuaScript& CreateScript() {
  static const LuaScript* script = new LuaScript(absl::StrCat(common::kScriptRefusedWhenFull, R"lua(
local fp = ARGV[3]
if fp ~= '' then
  local earlier = redis.call('HMGET', KEYS[3], 'fp', 'id')
  if earlier[1] then
    if earlier[1] ~= fp then return {'conflict'} end
    local r = redis.call('HMGET', ARGV[12] .. earlier[2], 'pb', 'status', 'etag', 'updated_ms')
    if r[1] then return {'replayed', r[1], r[2], r[3], r[4]} end
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'collision'} end
redis.call('HSET', KEYS[1], 'pb', ARGV[2], 'status', ARGV[4], 'instrument', ARGV[5],
           'issuing_state', ARGV[6], 'requested_state', ARGV[7], 'created_ms', ARGV[8],
           'updated_ms', ARGV[8], 'etag', ARGV[9])
redis.call('RPUSH', KEYS[2], ARGV[11])
redis.call('XADD', KEYS[7], '*', 'ev', ARGV[11])
redis.call('ZADD', KEYS[4], ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[8], ARGV[1])
local p = ARGV[14]
redis.call('HSET', KEYS[1], 'urgency', ARGV[13])
redis.call('ZADD', p .. 'idx:urgency:' .. ARGV[13], ARGV[8], ARGV[1])
if ARGV[6] ~= '' then redis.call('ZADD', p .. 'idx:issuing_state:' .. ARGV[6], ARGV[8], ARGV[1]) end
if ARGV[7] ~= '' then
  redis.call('ZADD', p .. 'idx:requested_state:' .. ARGV[7], ARGV[8], ARGV[1])
end
redis.call('ZADD', p .. 'idx:updated', ARGV[8], ARGV[1])
redis.call('HSET', KEYS[1], 'issuing_authority', ARGV[15], 'executing_authority', ARGV[16])
for _, party in ipairs({'a:' .. ARGV[15], 'a:' .. ARGV[16], 's:' .. ARGV[6], 's:' .. ARGV[7]}) do
  if #party > 2 then redis.call('ZADD', p .. 'idx:party:' .. party, ARGV[8], ARGV[1]) end
end
if fp ~= '' then
  redis.call('HSET', KEYS[3], 'fp', fp, 'id', ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[10])
end
return {'created'}
)lua"));
  return *script;
}

// Walks one shard's index newest first, from a cursor, keeping requests that match the
// filters, until `limit` matches or `budget` entries were examined.
// KEYS: index. ARGV: 1 max score ('+inf' or ms), 2 cursor id ('' = none), 3 limit, 4 budget,
//       5 status, 6 instrument, 7 issuing_state, 8 requested_state ('' = any), 9 req key
//       prefix, 10 min score ('-inf' or ms), 11 urgency, 12 created from, 13 created to
//       ('' = any; checked on the hash, for indexes not ordered by creation),
//       14 '1' when need-to-know scoped, 15 scope authority id, 16 scope central state
//       ('' = none): a request matches only if it is in the caller's reach
// Returns {exhausted (0|1), last score, last id, then pb, status, etag, updated_ms per match}
const LuaScript& ListScript() {
  static const LuaScript* script = new LuaScript(R"lua(
local max, cid = ARGV[1], ARGV[2]
local limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local cfrom, cto = tonumber(ARGV[12]), tonumber(ARGV[13])
local out = {0, '', ''}
local found, scanned, offset = 0, 0, 0
while true do
  local items = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, ARGV[10], 'WITHSCORES',
                           'LIMIT', offset, 100)
  if #items == 0 then out[1] = 1 return out end
  for i = 1, #items, 2 do
    local id, score = items[i], items[i + 1]
    offset = offset + 1
    if not (cid ~= '' and score == max and id >= cid) then
      scanned = scanned + 1
      local h = redis.call('HMGET', ARGV[9] .. id, 'pb', 'status', 'instrument',
                           'issuing_state', 'requested_state', 'etag', 'updated_ms', 'urgency',
                           'created_ms', 'issuing_authority', 'executing_authority')
      local created = tonumber(h[9])
      local reach = ARGV[14] ~= '1'
        or (ARGV[15] ~= '' and (h[10] == ARGV[15] or h[11] == ARGV[15]))
        or (ARGV[16] ~= '' and (h[4] == ARGV[16] or h[5] == ARGV[16]))
      if h[1] and reach and (ARGV[5] == '' or h[2] == ARGV[5]) and (ARGV[6] == '' or h[3] == ARGV[6])
         and (ARGV[7] == '' or h[4] == ARGV[7]) and (ARGV[8] == '' or h[5] == ARGV[8])
         and (ARGV[11] == '' or h[8] == ARGV[11])
         and (cfrom == nil or (created ~= nil and created >= cfrom))
         and (cto == nil or (created ~= nil and created < cto)) then
        out[#out + 1] = h[1]
        out[#out + 1] = h[2]
        out[#out + 1] = h[6]
        out[#out + 1] = h[7]
        found = found + 1
      end
      out[2], out[3] = score, id
      if found >= limit or scanned >= budget then return out end
    end
  end
end
)lua");
  return *script;
}

// Applies a Mutation (see request_store.h).
// KEYS: req, hist, outbox, idem, seen, document data, document list, document usage,
//       authority document usage.
// ARGV: 1 expected version ('' = unguarded), 2 new version ('' = keep), 3 updated ms,
//       4 new pb ('' = keep), 5 idempotency fingerprint ('' = none), 6 idempotency ttl ms,
//       7 result, 8 seen retention ms ('' = no marker), 9 shard prefix, 10 id,
//       11 number of fields, 12 number of history events, then field/value pairs, then
//       history events, then outbox events; ARGV[13] the serialized document ('' = none),
//       ARGV[14] the final statuses (FinalStatusesText, '' = the change sets no status) and
//       ARGV[15..18] the document's quota check (authority, size, request bound, authority
//       bound; see kDocumentQuotaLua) come before the field pairs.
// Refused whole by a full Redis: a change grows the history and the outbox.
// Retention: a status change into a final status (re)indexes the request in idx:closed by
// the change's time; one out of it unindexes it; a tombstone (erased_ms) is never indexed.
// Returns {'applied'} | {'replayed', result} | {'conflict'} | {'duplicate'} | {'missing'} |
//         {'stale', version} | {'nodata'} (the staged document expired) |
//         {'quota', 'request'|'authority', used}
const LuaScript& MutateScript() {
  static const LuaScript* script =
      new LuaScript(absl::StrCat(common::kScriptRefusedWhenFull, kDocumentQuotaLua, R"lua(
if ARGV[8] ~= '' and redis.call('EXISTS', KEYS[5]) == 1 then return {'duplicate'} end
local fp = ARGV[5]
if fp ~= '' then
  local earlier = redis.call('HMGET', KEYS[4], 'fp', 'res')
  if earlier[1] then
    if earlier[1] ~= fp or not earlier[2] then return {'conflict'} end
    return {'replayed', earlier[2]}
  end
end
local cur = redis.call('HMGET', KEYS[1], 'etag', 'created_ms')
if not cur[1] then return {'missing'} end
if ARGV[1] ~= '' and cur[1] ~= ARGV[1] then return {'stale', cur[1]} end
if ARGV[13] ~= '' then
  if redis.call('EXISTS', KEYS[6]) == 0 then return {'nodata'} end
  local over = over_quota(KEYS[8], KEYS[9], 15)
  if over then return over end
  local size = tonumber(ARGV[16])
  redis.call('HINCRBY', KEYS[8], 'total', size)
  redis.call('HINCRBY', KEYS[8], 'a:' .. ARGV[15], size)
  redis.call('HINCRBY', KEYS[9], ARGV[15], size)
  redis.call('PERSIST', KEYS[6])
  redis.call('RPUSH', KEYS[7], ARGV[13])
end
local id, p = ARGV[10], ARGV[9]
local nf, nh = tonumber(ARGV[11]), tonumber(ARGV[12])
-- The need-to-know party indexes (see the create script) follow the party fields.
local function parties()
  local h = redis.call('HMGET', KEYS[1], 'issuing_authority', 'executing_authority',
                       'issuing_state', 'requested_state')
  local s = {}
  for j, kind in ipairs({'a:', 'a:', 's:', 's:'}) do
    if h[j] and h[j] ~= '' then s[kind .. h[j]] = true end
  end
  return s
end
local before = nf > 0 and parties() or {}
local i = 19
local status_moved = false
for _ = 1, nf do
  local f, v = ARGV[i], ARGV[i + 1]
  i = i + 2
  local old = redis.call('HGET', KEYS[1], f)
  if old ~= v then
    if f == 'status' then status_moved = true end
    if f ~= 'issuing_authority' and f ~= 'executing_authority' then
      if old and old ~= '' then redis.call('ZREM', p .. 'idx:' .. f .. ':' .. old, id) end
      if v ~= '' then redis.call('ZADD', p .. 'idx:' .. f .. ':' .. v, cur[2], id) end
    end
    redis.call('HSET', KEYS[1], f, v)
  end
end
if nf > 0 and redis.call('HEXISTS', KEYS[1], 'erased_ms') == 0 then
  local after = parties()
  for k in pairs(before) do
    if not after[k] then redis.call('ZREM', p .. 'idx:party:' .. k, id) end
  end
  for k in pairs(after) do
    if not before[k] then redis.call('ZADD', p .. 'idx:party:' .. k, cur[2], id) end
  end
end
if status_moved and ARGV[14] ~= '' and redis.call('HEXISTS', KEYS[1], 'erased_ms') == 0 then
  local h = redis.call('HMGET', KEYS[1], 'instrument', 'status')
  if string.find(ARGV[14], ',' .. (h[1] or '') .. ':' .. (h[2] or '') .. ',', 1, true) then
    redis.call('ZADD', p .. 'idx:closed', ARGV[3], id)
  else
    redis.call('ZREM', p .. 'idx:closed', id)
  end
end
for _ = 1, nh do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  i = i + 1
end
while i <= #ARGV do
  redis.call('XADD', KEYS[3], '*', 'ev', ARGV[i])
  i = i + 1
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'pb', ARGV[4]) end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'etag', ARGV[2], 'updated_ms', ARGV[3])
  redis.call('ZADD', p .. 'idx:updated', ARGV[3], id)
end
if fp ~= '' then
  redis.call('HSET', KEYS[4], 'fp', fp, 'id', id, 'res', ARGV[7])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
end
if ARGV[8] ~= '' then redis.call('SET', KEYS[5], '1', 'PX', ARGV[8]) end
return {'applied'}
)lua"));
  return *script;
}

// Reads a request to compute a change on, and the idempotency record of the change.
// KEYS: req, idem. ARGV: fingerprint ('' = none).
// Returns {'found', pb, status, etag, updated_ms} | {'replayed', result} | {'conflict'} |
//         {'missing'}
const LuaScript& LoadScript() {
  static const LuaScript* script = new LuaScript(R"lua(
if ARGV[1] ~= '' then
  local e = redis.call('HMGET', KEYS[2], 'fp', 'res')
  if e[1] then
    if e[1] ~= ARGV[1] or not e[2] then return {'conflict'} end
    return {'replayed', e[2]}
  end
end
local r = redis.call('HMGET', KEYS[1], 'pb', 'status', 'etag', 'updated_ms')
if not r[1] then return {'missing'} end
return {'found', r[1], r[2], r[3], r[4]}
)lua");
  return *script;
}

// KEYS: hist. ARGV: first index, last index. Returns {length, {events...}}.
const LuaScript& HistoryRangeScript() {
  static const LuaScript* script = new LuaScript(R"lua(
return {redis.call('LLEN', KEYS[1]), redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])}
)lua");
  return *script;
}

std::string ReqPrefix(int shard) { return absl::StrCat(Sharding::Prefix(shard), "req:"); }

absl::StatusOr<v1::Request> ParseRequest(const std::string& pb) {
  v1::Request r;
  if (!r.ParseFromString(pb)) return absl::DataLossError("stored request does not parse");
  return r;
}

// A stored request: its pb, overlaid with the fields that change after submission (status,
// etag, update time), which scripts keep as hash fields. `at` indexes pb in `fields`; the
// other three follow it.
absl::StatusOr<v1::Request> ParseStored(const std::vector<RedisReply>& fields, size_t at) {
  auto r = ParseRequest(fields[at].str);
  if (!r.ok()) return r;
  int status = 0;
  int64_t updated_ms = 0;
  if (absl::SimpleAtoi(fields[at + 1].str, &status) && common::v1::RequestStatus_IsValid(status)) {
    r->set_status(static_cast<common::v1::RequestStatus>(status));
  }
  if (!fields[at + 2].is_nil()) r->set_etag(fields[at + 2].str);
  if (absl::SimpleAtoi(fields[at + 3].str, &updated_ms)) {
    *r->mutable_update_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(updated_ms);
  }
  return r;
}

absl::Status IdempotencyConflict() {
  return absl::AlreadyExistsError("request_id was already used with a different request");
}

struct ShardPage {
  bool exhausted = true;
  std::optional<ListCursor> last;
  std::vector<v1::Request> requests;
};

}  // namespace

void RedisRequestStore::Create(NewRequest in, Done<CreateOutcome> done) {
  auto shard = sharding_.ShardOf("rq", in.request.id());
  if (!shard.ok()) return done(shard.status());
  const std::string p = Sharding::Prefix(*shard);
  const v1::Request& r = in.request;
  const std::string id = r.id();
  const std::string fp = in.idempotency ? in.idempotency->fingerprint : "";
  const std::string idem_key = in.idempotency ? absl::StrCat(p, "idem:", in.idempotency->scope, ":",
                                                             in.idempotency->request_id)
                                              : absl::StrCat(p, "idem:-");
  std::vector<std::string> keys = {
      absl::StrCat(p, "req:", id),
      absl::StrCat(p, "hist:", id),
      idem_key,
      absl::StrCat(p, "idx:all"),
      absl::StrCat(p, "idx:status:", static_cast<int>(r.status())),
      absl::StrCat(p, "idx:instrument:", static_cast<int>(r.content().instrument())),
      common::EventKeys::Outbox(*shard, "intake")};
  std::vector<std::string> args = {id,
                                   r.SerializeAsString(),
                                   fp,
                                   absl::StrCat(static_cast<int>(r.status())),
                                   absl::StrCat(static_cast<int>(r.content().instrument())),
                                   r.content().issuing_authority().state(),
                                   r.content().requested_state(),
                                   absl::StrCat(CursorOf(r).create_ms),
                                   r.etag(),
                                   absl::StrCat(absl::ToInt64Milliseconds(idempotency_ttl_)),
                                   in.submitted.SerializeAsString(),
                                   ReqPrefix(*shard),
                                   absl::StrCat(static_cast<int>(r.content().urgency())),
                                   p,
                                   r.content().issuing_authority().authority_id(),
                                   r.executing_authority().authority_id()};
  redis_.Eval(CreateScript(), std::move(keys), std::move(args),
              [request = std::move(in.request), done](absl::StatusOr<RedisReply> reply) mutable {
                if (!reply.ok()) return done(reply.status());
                if (reply->elements.empty()) return done(absl::InternalError("empty script reply"));
                const std::string& outcome = reply->elements[0].str;
                if (outcome == "created") return done(CreateOutcome{std::move(request), false});
                if (outcome == "conflict") {
                  return done(absl::AlreadyExistsError(
                      "request_id was already used with a different request"));
                }
                if (outcome == "replayed" && reply->elements.size() == 5) {
                  auto earlier = ParseStored(reply->elements, 1);
                  if (!earlier.ok()) return done(earlier.status());
                  return done(CreateOutcome{*std::move(earlier), true});
                }
                done(absl::AbortedError("request id collision; retry"));
              });
}

void RedisRequestStore::Get(const std::string& id, Done<v1::Request> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command(
      {"HMGET", absl::StrCat(ReqPrefix(*shard), id), "pb", "status", "etag", "updated_ms"},
      [id, done](absl::StatusOr<RedisReply> reply) {
        if (!reply.ok()) return done(reply.status());
        if (reply->elements.size() != 4 || reply->elements[0].is_nil()) {
          return done(absl::NotFoundError(absl::StrCat("no request with id ", id)));
        }
        done(ParseStored(reply->elements, 0));
      });
}

// A list gathers the page from every shard, in rounds. The first round asks each shard for
// a share of the page (twice its even share, at least 4) rather than a whole page: requests
// spread over 16 shards, and a whole page from each read and shipped 16 pages (every one
// with its stored protobuf) to answer one. The page is what every shard is known to have
// been scanned past; when that is short of the page size, the shards not yet exhausted are
// asked again from where each stopped, for the rest, up to kListRounds rounds. A page still
// short then (sparse filters hitting the scan budget) is answered as is with a `next`
// cursor, as before.
struct RedisRequestStore::ListGather {
  ListGather(ListQuery q, Done<ListPage> d, int shards)
      : query(std::move(q)), done(std::move(d)), pages(shards) {}
  const ListQuery query;
  const Done<ListPage> done;
  absl::Mutex mu;
  int pending ABSL_GUARDED_BY(mu) = 0;
  int round = 0;  // touched only between rounds
  absl::Status error ABSL_GUARDED_BY(mu);
  // What each shard returned so far, in order, with where it stopped.
  std::vector<ShardPage> pages;
};

// KEYS: req, the request shard's audit pending stream. ARGV: 1 every request in scope
// ('1'|''), 2 scope authority id, 3 scope central state ('' = none), 4 max pending, 5 request
// id, 6 entry mac, 7 entry. The reach rule is ListScript's. Returns {} when there is no
// such request, else {pb, status, etag, updated_ms, recorded (1|0)}.
const LuaScript& GetRecordedScript() {
  static const LuaScript* script = new LuaScript(R"lua(
local h = redis.call('HMGET', KEYS[1], 'pb', 'status', 'etag', 'updated_ms',
                     'issuing_authority', 'executing_authority', 'issuing_state',
                     'requested_state')
if not h[1] then return {} end
local reach = ARGV[1] == '1'
  or (ARGV[2] ~= '' and (h[5] == ARGV[2] or h[6] == ARGV[2]))
  or (ARGV[3] ~= '' and (h[7] == ARGV[3] or h[8] == ARGV[3]))
local recorded = 0
if reach and redis.call('XLEN', KEYS[2]) < tonumber(ARGV[4]) then
  redis.call('XADD', KEYS[2], '*', 'r', ARGV[5], 'm', ARGV[6], 'e', ARGV[7])
  recorded = 1
end
return {h[1], h[2], h[3], h[4], recorded}
)lua");
  return *script;
}

void RedisRequestStore::GetRecorded(const std::string& id, const RecordedRead& read,
                                    Done<ReadOutcome> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  redis_.Eval(GetRecordedScript(), {absl::StrCat(ReqPrefix(*shard), id), read.entry.pending_key},
              {read.scope.all ? "1" : "", read.scope.authority_id, read.scope.central_state,
               absl::StrCat(read.entry.max_pending), read.entry.request_id, read.entry.mac,
               read.entry.entry},
              [id, done](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                if (reply->elements.size() != 5) {
                  return done(absl::NotFoundError(absl::StrCat("no request with id ", id)));
                }
                auto request = ParseStored(reply->elements, 0);
                if (!request.ok()) return done(request.status());
                done(ReadOutcome{*std::move(request), reply->elements[4].integer == 1});
              });
}

void RedisRequestStore::List(const ListQuery& query, Done<ListPage> done) {
  const int shards = sharding_.shard_count();
  auto gather = std::make_shared<ListGather>(query, std::move(done), shards);
  std::vector<int> all(shards);
  for (int i = 0; i < shards; ++i) all[i] = i;
  const int share =
      std::min(query.page_size, std::max(4, 2 * ((query.page_size + shards - 1) / shards)));
  ListRound(gather, all, share);
}

void RedisRequestStore::ListRound(const std::shared_ptr<ListGather>& gather,
                                  const std::vector<int>& shards, int limit) {
  const ListQuery& query = gather->query;
  {
    absl::MutexLock lock(&gather->mu);
    gather->pending = static_cast<int>(shards.size());
  }
  for (int shard : shards) {
    const std::string p = Sharding::Prefix(shard);
    // The most selective index that serves the filters; the scan checks the others. Lists
    // by update walk the update-time index.
    std::string index = absl::StrCat(p, "idx:all");
    // A scoped list walks the caller's party index (a central authority's: its state's,
    // which holds the requests of the authorities of that state too).
    const bool scoped = query.scope.has_value() && !query.scope->all;
    if (query.by_update) {
      index = absl::StrCat(p, "idx:updated");
    } else if (scoped) {
      index = query.scope->central_state.empty()
                  ? absl::StrCat(p, "idx:party:a:", query.scope->authority_id)
                  : absl::StrCat(p, "idx:party:s:", query.scope->central_state);
    } else if (query.status != 0) {
      index = absl::StrCat(p, "idx:status:", static_cast<int>(query.status));
    } else if (query.instrument != 0) {
      index = absl::StrCat(p, "idx:instrument:", static_cast<int>(query.instrument));
    } else if (!query.requested_state.empty()) {
      index = absl::StrCat(p, "idx:requested_state:", query.requested_state);
    } else if (!query.issuing_state.empty()) {
      index = absl::StrCat(p, "idx:issuing_state:", query.issuing_state);
    } else if (query.urgency != 0) {
      index = absl::StrCat(p, "idx:urgency:", static_cast<int>(query.urgency));
    }
    std::string max = "+inf", min = "-inf";
    if (!query.by_update && query.created_to_ms) max = absl::StrCat(*query.created_to_ms - 1);
    if (!query.by_update && query.created_from_ms) min = absl::StrCat(*query.created_from_ms);
    const std::optional<ListCursor>& after =
        gather->pages[shard].last.has_value() ? gather->pages[shard].last : query.after;
    if (after) max = absl::StrCat(after->create_ms);
    std::vector<std::string> args = {
        max,
        after ? after->id : "",
        absl::StrCat(limit),
        absl::StrCat(kScanBudget),
        query.status != 0 ? absl::StrCat(static_cast<int>(query.status)) : "",
        query.instrument != 0 ? absl::StrCat(static_cast<int>(query.instrument)) : "",
        query.issuing_state,
        query.requested_state,
        ReqPrefix(shard),
        min,
        query.urgency != 0 ? absl::StrCat(static_cast<int>(query.urgency)) : "",
        query.created_from_ms ? absl::StrCat(*query.created_from_ms) : "",
        query.created_to_ms ? absl::StrCat(*query.created_to_ms) : "",
        scoped ? "1" : "",
        scoped ? query.scope->authority_id : "",
        scoped ? query.scope->central_state : ""};
    redis_.Eval(ListScript(), {index}, std::move(args),
                [this, gather, shard](absl::StatusOr<RedisReply> reply) {
                  ShardPage page;
                  absl::Status error;
                  if (!reply.ok()) {
                    error = reply.status();
                  } else if (reply->elements.size() < 3) {
                    error = absl::InternalError("unexpected list script reply");
                  } else {
                    page.exhausted = reply->elements[0].integer == 1;
                    int64_t score = 0;
                    if (!reply->elements[2].str.empty() &&
                        absl::SimpleAtoi(reply->elements[1].str, &score)) {
                      page.last = ListCursor{score, reply->elements[2].str};
                    }
                    for (size_t i = 3; i + 3 < reply->elements.size() && error.ok(); i += 4) {
                      auto r = ParseStored(reply->elements, i);
                      if (r.ok()) {
                        page.requests.push_back(*std::move(r));
                      } else {
                        error = r.status();
                      }
                    }
                  }
                  bool last = false;
                  {
                    absl::MutexLock lock(&gather->mu);
                    if (!error.ok() && gather->error.ok()) gather->error = error;
                    ShardPage& kept = gather->pages[shard];
                    kept.exhausted = page.exhausted;
                    if (page.last.has_value()) kept.last = page.last;
                    for (auto& r : page.requests) kept.requests.push_back(std::move(r));
                    last = --gather->pending == 0;
                  }
                  if (last) ListEvaluate(gather);
                });
  }
}

void RedisRequestStore::ListEvaluate(const std::shared_ptr<ListGather>& gather) {
  const ListQuery& query = gather->query;
  absl::Status error;
  {
    absl::MutexLock lock(&gather->mu);
    error = gather->error;
  }
  if (!error.ok()) return gather->done(error);
  // Only positions every unfinished shard has scanned past are known completely.
  std::optional<ListCursor> boundary;
  std::vector<int> unfinished;
  std::vector<const v1::Request*> known;
  for (size_t shard = 0; shard < gather->pages.size(); ++shard) {
    const ShardPage& page = gather->pages[shard];
    if (!page.exhausted && page.last.has_value()) {
      unfinished.push_back(static_cast<int>(shard));
      if (!boundary.has_value() || ComesBefore(*page.last, *boundary)) boundary = page.last;
    }
  }
  const bool by_update = query.by_update;
  for (const ShardPage& page : gather->pages) {
    for (const v1::Request& r : page.requests) {
      if (!boundary.has_value() || !ComesBefore(*boundary, CursorOf(r, by_update))) {
        known.push_back(&r);
      }
    }
  }
  const size_t want = static_cast<size_t>(query.page_size);
  if (known.size() < want && !unfinished.empty() && ++gather->round < kListRounds) {
    return ListRound(gather, unfinished, static_cast<int>(want - known.size()));
  }
  std::sort(known.begin(), known.end(), [by_update](const v1::Request* a, const v1::Request* b) {
    return ComesBefore(CursorOf(*a, by_update), CursorOf(*b, by_update));
  });
  ListPage out;
  if (known.size() > want) {
    known.resize(want);
    out.next = CursorOf(*known.back(), by_update);
  } else {
    out.next = boundary;
  }
  out.requests.reserve(known.size());
  for (const v1::Request* r : known) out.requests.push_back(*r);
  gather->done(std::move(out));
}

void RedisRequestStore::History(const std::string& id, Done<std::vector<common::v1::Event>> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"LRANGE", absl::StrCat(Sharding::Prefix(*shard), "hist:", id), "0", "-1"},
                 [id, done](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   if (reply->elements.empty()) {
                     return done(absl::NotFoundError(absl::StrCat("no request with id ", id)));
                   }
                   std::vector<common::v1::Event> events;
                   for (const RedisReply& e : reply->elements) {
                     common::v1::Event event;
                     if (!event.ParseFromString(e.str)) {
                       return done(absl::DataLossError("stored history event does not parse"));
                     }
                     events.push_back(std::move(event));
                   }
                   done(std::move(events));
                 });
}

std::string RedisRequestStore::IdemKey(int shard, const std::optional<Idempotency>& idem) {
  return idem ? absl::StrCat(Sharding::Prefix(shard), "idem:", idem->scope, ":", idem->request_id)
              : absl::StrCat(Sharding::Prefix(shard), "idem:-");
}

void RedisRequestStore::HistoryRange(const std::string& id, int64_t offset, int limit,
                                     Done<HistoryPage> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  redis_.Eval(HistoryRangeScript(), {absl::StrCat(Sharding::Prefix(*shard), "hist:", id)},
              {absl::StrCat(offset), absl::StrCat(offset + std::max(limit, 1) - 1)},
              [id, done](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                if (reply->elements.size() != 2) {
                  return done(absl::InternalError("unexpected history reply"));
                }
                HistoryPage page;
                page.total = reply->elements[0].integer;
                if (page.total == 0) {
                  return done(absl::NotFoundError(absl::StrCat("no request with id ", id)));
                }
                for (const RedisReply& e : reply->elements[1].elements) {
                  common::v1::Event event;
                  if (!event.ParseFromString(e.str)) {
                    return done(absl::DataLossError("stored history event does not parse"));
                  }
                  page.events.push_back(std::move(event));
                }
                done(std::move(page));
              });
}

void RedisRequestStore::Load(const std::string& id, const std::optional<Idempotency>& idem,
                             Done<Snapshot> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  redis_.Eval(LoadScript(), {absl::StrCat(ReqPrefix(*shard), id), IdemKey(*shard, idem)},
              {idem ? idem->fingerprint : ""}, [id, done](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                if (reply->elements.empty()) {
                  return done(absl::InternalError("empty script reply"));
                }
                const std::string& outcome = reply->elements[0].str;
                if (outcome == "missing") {
                  return done(absl::NotFoundError(absl::StrCat("no request with id ", id)));
                }
                if (outcome == "conflict") return done(IdempotencyConflict());
                Snapshot snap;
                if (outcome == "replayed" && reply->elements.size() == 2) {
                  snap.replay = reply->elements[1].str;
                  return done(std::move(snap));
                }
                if (outcome != "found" || reply->elements.size() != 5) {
                  return done(absl::InternalError("unexpected load reply"));
                }
                auto r = ParseStored(reply->elements, 1);
                if (!r.ok()) return done(r.status());
                snap.request = *std::move(r);
                if (!absl::SimpleAtoi(snap.request.etag(), &snap.version)) {
                  return done(absl::DataLossError("stored version is not a number"));
                }
                done(std::move(snap));
              });
}

void RedisRequestStore::Mutate(Mutation m, Done<MutationOutcome> done) {
  auto shard = sharding_.ShardOf("rq", m.id);
  if (!shard.ok()) return done(shard.status());
  const std::string p = Sharding::Prefix(*shard);
  std::vector<std::string> keys = {
      absl::StrCat(p, "req:", m.id),
      absl::StrCat(p, "hist:", m.id),
      common::EventKeys::Outbox(*shard, "intake"),
      IdemKey(*shard, m.idempotency),
      m.dedupe ? m.dedupe->seen_key : absl::StrCat(p, "seen:-"),
      m.document ? m.document->data_key : absl::StrCat(p, "doc:-"),
      m.document ? m.document->list_key : absl::StrCat(p, "docs:-"),
      m.document ? m.document->usage_key : absl::StrCat(p, "docbytes:-"),
      RedisDocumentStore::AuthorityUsageKey()};
  std::vector<std::string> args = {
      m.expected_version ? absl::StrCat(*m.expected_version) : "",
      m.new_version ? absl::StrCat(*m.new_version) : "",
      absl::StrCat(m.updated_ms),
      m.request ? m.request->SerializeAsString() : "",
      m.idempotency ? m.idempotency->fingerprint : "",
      absl::StrCat(absl::ToInt64Milliseconds(idempotency_ttl_)),
      m.result,
      m.dedupe ? m.dedupe->retention_ms : "",
      p,
      m.id,
      absl::StrCat(m.fields.size()),
      absl::StrCat(m.history.size()),
      m.document ? m.document->document : "",
      std::any_of(m.fields.begin(), m.fields.end(),
                  [](const auto& f) { return f.first == "status"; })
          ? FinalStatusesText()
          : "",
      m.document ? m.document->authority : "",
      m.document ? absl::StrCat(m.document->size_bytes) : "0",
      m.document ? absl::StrCat(m.document->max_request_bytes) : "0",
      m.document ? absl::StrCat(m.document->max_authority_bytes) : "0"};
  for (const auto& [field, value] : m.fields) {
    args.push_back(field);
    args.push_back(value);
  }
  for (const auto& e : m.history) args.push_back(e.SerializeAsString());
  for (const auto& e : m.outbox) args.push_back(e.SerializeAsString());
  std::optional<DocumentQuota> quota;
  int64_t adding = 0;
  if (m.document) {
    quota = DocumentQuota{m.document->authority, m.document->max_request_bytes,
                          m.document->max_authority_bytes};
    adding = m.document->size_bytes;
  }
  redis_.Eval(MutateScript(), std::move(keys), std::move(args),
              [id = m.id, quota, adding, done](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                if (reply->elements.empty()) {
                  return done(absl::InternalError("empty script reply"));
                }
                const std::string& outcome = reply->elements[0].str;
                MutationOutcome out;
                if (outcome == "applied") return done(out);
                if (outcome == "duplicate") {
                  out.kind = MutationOutcome::Kind::kDuplicate;
                  return done(out);
                }
                if (outcome == "replayed" && reply->elements.size() == 2) {
                  out.kind = MutationOutcome::Kind::kReplayed;
                  out.result = reply->elements[1].str;
                  return done(out);
                }
                if (outcome == "conflict") return done(IdempotencyConflict());
                if (outcome == "missing") {
                  return done(absl::NotFoundError(absl::StrCat("no request with id ", id)));
                }
                if (outcome == "quota" && quota) {
                  return done(QuotaReplyToStatus(*reply, *quota, adding));
                }
                if (outcome == "nodata") {
                  return done(absl::AbortedError(
                      "the uploaded bytes expired before the upload completed; upload again"));
                }
                if (outcome == "stale" && reply->elements.size() == 2) {
                  return done(StaleVersion(reply->elements[1].str));
                }
                done(absl::InternalError("unexpected mutate reply"));
              });
}

// Retention (see request_store.h and retention.h).
namespace {

// KEYS: idx:closed, idx:tombstoned, retention:unaudited. ARGV: closed cutoff, tombstone
// cutoff, limit. Returns {closed ids, tombstone ids, {field, erased ms, ...}}: bounded ranges
// (and one HSCAN page of the pending audits, which only hold erasures not yet audited).
const LuaScript& RetentionWorkScript() {
  static const LuaScript* script = new LuaScript(R"lua(
local a = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local b = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local c = redis.call('HSCAN', KEYS[3], 0, 'COUNT', ARGV[3])
return {a, b, c[2]}
)lua");
  return *script;
}

// Erasure step 1. KEYS: req, hist, docs list, outbox, idx:closed, idx:tombstoned,
// retention:unaudited, document usage, authority document usage, then each document's data
// key. ARGV: 1 expected etag, 2 new etag, 3 closed cutoff, 4 now ms, 5 tombstone pb,
// 6 REQUEST_ERASED event, 7 id, 8 number of documents, 9 shard prefix.
// The documents' bytes go back to the authorities that uploaded them (DocumentQuota).
// Runs when Redis is full: it frees far more (the documents) than it writes.
// Returns {'erased'} | {'skip'} (gone, already a tombstone, or not due) | {'stale'}.
const LuaScript& ErasePersonalScript() {
  static const LuaScript* script = new LuaScript(absl::StrCat(common::kScriptRunsWhenFull, R"lua(
local id = ARGV[7]
local cur = redis.call('HMGET', KEYS[1], 'etag', 'erased_ms')
if not cur[1] or cur[2] then
  redis.call('ZREM', KEYS[5], id)
  return {'skip'}
end
local closed = redis.call('ZSCORE', KEYS[5], id)
if not closed or tonumber(closed) > tonumber(ARGV[3]) then return {'skip'} end
if cur[1] ~= ARGV[1] then return {'stale'} end
if redis.call('LLEN', KEYS[3]) ~= tonumber(ARGV[8]) then return {'stale'} end
for k = 10, #KEYS do redis.call('DEL', KEYS[k]) end
redis.call('DEL', KEYS[3])
local usage = redis.call('HGETALL', KEYS[8])
for k = 1, #usage, 2 do
  if string.sub(usage[k], 1, 2) == 'a:' then
    local who = string.sub(usage[k], 3)
    if redis.call('HINCRBY', KEYS[9], who, -tonumber(usage[k + 1])) <= 0 then
      redis.call('HDEL', KEYS[9], who)
    end
  end
end
redis.call('DEL', KEYS[8])
redis.call('HSET', KEYS[1], 'pb', ARGV[5], 'etag', ARGV[2], 'updated_ms', ARGV[4],
           'erased_ms', ARGV[4])
redis.call('ZADD', ARGV[9] .. 'idx:updated', ARGV[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('ZADD', KEYS[6], ARGV[4], id)
redis.call('RPUSH', KEYS[2], ARGV[6])
redis.call('XADD', KEYS[4], '*', 'ev', ARGV[6])
redis.call('HSET', KEYS[7], '1:' .. id, ARGV[4])
return {'erased'}
)lua"));
  return *script;
}

// Erasure step 2. KEYS: req, hist, docs list, idx:tombstoned, retention:unaudited.
// ARGV: id, tombstone cutoff, now ms, shard prefix. Every hash field but the stored ones
// names an index (idx:<field>:<value>, as the mutate script keeps them), so the entries go
// whatever indexes a later change adds; the need-to-know party indexes (idx:party:a:<id>,
// idx:party:s:<state>, see the create script) go too.
// Runs when Redis is full: it frees the tombstone, its history and its index entries.
// Returns {'erased'} | {'skip'}.
const LuaScript& EraseRequestScript() {
  static const LuaScript* script = new LuaScript(absl::StrCat(common::kScriptRunsWhenFull, R"lua(
local id, p = ARGV[1], ARGV[4]
local t = redis.call('ZSCORE', KEYS[4], id)
if not t or tonumber(t) > tonumber(ARGV[2]) then return {'skip'} end
local h = redis.call('HGETALL', KEYS[1])
local stored = {pb = true, etag = true, created_ms = true, updated_ms = true, erased_ms = true}
for k = 1, #h, 2 do
  if not stored[h[k]] and h[k + 1] ~= '' then
    redis.call('ZREM', p .. 'idx:' .. h[k] .. ':' .. h[k + 1], id)
  end
end
local f = redis.call('HMGET', KEYS[1], 'issuing_authority', 'executing_authority',
                     'issuing_state', 'requested_state')
for j, kind in ipairs({'a:', 'a:', 's:', 's:'}) do
  if f[j] and f[j] ~= '' then redis.call('ZREM', p .. 'idx:party:' .. kind .. f[j], id) end
end
redis.call('ZREM', p .. 'idx:all', id)
redis.call('ZREM', p .. 'idx:updated', id)
redis.call('ZREM', p .. 'idx:closed', id)
redis.call('ZREM', KEYS[4], id)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[5], '2:' .. id, ARGV[3])
return {'erased'}
)lua"));
  return *script;
}

std::string UnauditedKey(int shard) {
  return absl::StrCat(Sharding::Prefix(shard), "retention:unaudited");
}

}  // namespace

void RedisRequestStore::FindRetentionWork(int64_t closed_before_ms, int64_t tombstoned_before_ms,
                                          int limit, Done<RetentionWork> done) {
  struct Gather {
    absl::Mutex mu;
    int pending = 0;
    absl::Status error;
    RetentionWork work;
  };
  auto gather = std::make_shared<Gather>();
  gather->pending = sharding_.shard_count();
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
    const std::string p = Sharding::Prefix(shard);
    redis_.Eval(
        RetentionWorkScript(),
        {absl::StrCat(p, "idx:closed"), absl::StrCat(p, "idx:tombstoned"), UnauditedKey(shard)},
        {absl::StrCat(closed_before_ms), absl::StrCat(tombstoned_before_ms),
         absl::StrCat(std::max(limit, 1))},
        [gather, done](absl::StatusOr<RedisReply> reply) {
          bool last = false;
          {
            absl::MutexLock lock(&gather->mu);
            if (!reply.ok()) {
              if (gather->error.ok()) gather->error = reply.status();
            } else if (reply->elements.size() != 3) {
              gather->error = absl::InternalError("unexpected retention work reply");
            } else {
              for (const auto& e : reply->elements[0].elements) {
                gather->work.personal.push_back(e.str);
              }
              for (const auto& e : reply->elements[1].elements) {
                gather->work.whole.push_back(e.str);
              }
              const auto& pending = reply->elements[2].elements;
              for (size_t k = 0; k + 1 < pending.size(); k += 2) {
                const std::string& field = pending[k].str;
                PendingErasureAudit a;
                int64_t at = 0;
                if (field.size() < 3 || field[1] != ':' || (field[0] != '1' && field[0] != '2') ||
                    !absl::SimpleAtoi(pending[k + 1].str, &at)) {
                  continue;
                }
                a.step = field[0] == '1' ? ErasureStep::kPersonalData : ErasureStep::kRequest;
                a.id = field.substr(2);
                a.erased_ms = at;
                gather->work.unaudited.push_back(std::move(a));
              }
            }
            last = --gather->pending == 0;
          }
          if (!last) return;
          if (!gather->error.ok()) return done(gather->error);
          done(std::move(gather->work));
        });
  }
}

void RedisRequestStore::ErasePersonalData(PersonalDataErasure e, Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", e.id);
  if (!shard.ok()) return done(shard.status());
  const std::string p = Sharding::Prefix(*shard);
  std::vector<std::string> keys = {absl::StrCat(p, "req:", e.id),
                                   absl::StrCat(p, "hist:", e.id),
                                   RedisDocumentStore::ListKey(*shard, e.id),
                                   common::EventKeys::Outbox(*shard, "intake"),
                                   absl::StrCat(p, "idx:closed"),
                                   absl::StrCat(p, "idx:tombstoned"),
                                   UnauditedKey(*shard),
                                   RedisDocumentStore::UsageKey(*shard, e.id),
                                   RedisDocumentStore::AuthorityUsageKey()};
  for (const auto& d : e.document_ids) keys.push_back(RedisDocumentStore::DataKey(*shard, d));
  std::vector<std::string> args = {absl::StrCat(e.expected_version),
                                   absl::StrCat(e.expected_version + 1),
                                   absl::StrCat(e.closed_before_ms),
                                   absl::StrCat(e.now_ms),
                                   e.tombstone.SerializeAsString(),
                                   e.erased.SerializeAsString(),
                                   e.id,
                                   absl::StrCat(e.document_ids.size()),
                                   p};
  redis_.Eval(ErasePersonalScript(), std::move(keys), std::move(args),
              [done](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                if (reply->elements.empty()) {
                  return done(absl::InternalError("empty script reply"));
                }
                const std::string& outcome = reply->elements[0].str;
                if (outcome == "erased") return done(true);
                if (outcome == "skip") return done(false);
                done(absl::AbortedError("the request changed while its erasure was computed"));
              });
}

void RedisRequestStore::EraseRequest(const std::string& id, int64_t tombstoned_before_ms,
                                     int64_t now_ms, Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  const std::string p = Sharding::Prefix(*shard);
  redis_.Eval(EraseRequestScript(),
              {absl::StrCat(p, "req:", id), absl::StrCat(p, "hist:", id),
               RedisDocumentStore::ListKey(*shard, id), absl::StrCat(p, "idx:tombstoned"),
               UnauditedKey(*shard)},
              {id, absl::StrCat(tombstoned_before_ms), absl::StrCat(now_ms), p},
              [done](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                if (reply->elements.empty()) {
                  return done(absl::InternalError("empty script reply"));
                }
                done(reply->elements[0].str == "erased");
              });
}

void RedisRequestStore::ErasureAudited(const PendingErasureAudit& audit, Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", audit.id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command(
      {"HDEL", UnauditedKey(*shard), absl::StrCat(static_cast<int>(audit.step), ":", audit.id)},
      [done](absl::StatusOr<RedisReply> reply) {
        if (!reply.ok()) return done(reply.status());
        done(reply->integer == 1);
      });
}

}  // namespace rogatory::intake
