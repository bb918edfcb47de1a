#include "redis_request_store.h"

#include <algorithm>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/time_util.h"

namespace rogatory::intake {
namespace {

using common::LuaScript;
using common::RedisReply;
using common::Sharding;

// KEYS: req, hist, idem, idx:all, idx:status, idx:instrument, outbox
// ARGV: id, pb, fingerprint ('' = no idempotency), status, instrument, issuing_state,
//       requested_state, created_ms, etag, idempotency ttl ms, event pb, req key prefix
// Returns {'created'} | {'replayed', pb} | {'conflict'} | {'collision'}
const LuaScript& CreateScript() {
  static const LuaScript* script = new LuaScript(R"lua(
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
if fp ~= '' then
  redis.call('HSET', KEYS[3], 'fp', fp, 'id', ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[10])
end
return {'created'}
)lua");
  return *script;
}

// Walks one shard's index newest first, from a cursor, keeping requests that match the
// filters, until `limit` matches or `budget` entries were examined.
// KEYS: index. ARGV: max score ('+inf' or ms), cursor id ('' = none), limit, budget,
//       status, instrument, issuing_state, requested_state ('' = any), req key prefix
// Returns {exhausted (0|1), last score, last id, then pb, status, etag, updated_ms per match}
const LuaScript& ListScript() {
  static const LuaScript* script = new LuaScript(R"lua(
local max, cid = ARGV[1], ARGV[2]
local limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {0, '', ''}
local found, scanned, offset = 0, 0, 0
while true do
  local items = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'WITHSCORES',
                           'LIMIT', offset, 100)
  if #items == 0 then out[1] = 1 return out end
  for i = 1, #items, 2 do
    local id, score = items[i], items[i + 1]
    offset = offset + 1
    if not (cid ~= '' and score == max and id >= cid) then
      scanned = scanned + 1
      local h = redis.call('HMGET', ARGV[9] .. id, 'pb', 'status', 'instrument',
                           'issuing_state', 'requested_state', 'etag', 'updated_ms')
      if h[1] and (ARGV[5] == '' or h[2] == ARGV[5]) and (ARGV[6] == '' or h[3] == ARGV[6])
         and (ARGV[7] == '' or h[4] == ARGV[7]) and (ARGV[8] == '' or h[5] == ARGV[8]) then
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

// A ReceiverScript. KEYS: seen, req, hist. ARGV: retention ms, event pb, new status ('' if
// none), occur ms, key prefix of the shard, request id.
// Returns {'duplicate'} | {'missing'} | {'recorded'}
const LuaScript& RecordEventScript() {
  static const LuaScript* script = new LuaScript(common::ReceiverScript(R"lua(
local old = redis.call('HGET', KEYS[2], 'status')
if not old then return {'missing'} end
redis.call('RPUSH', KEYS[3], ARGV[2])
if ARGV[3] ~= '' and ARGV[3] ~= old then
  redis.call('HSET', KEYS[2], 'status', ARGV[3], 'updated_ms', ARGV[4])
  redis.call('HINCRBY', KEYS[2], 'etag', 1)
  local created = redis.call('HGET', KEYS[2], 'created_ms')
  redis.call('ZREM', ARGV[5] .. 'idx:status:' .. old, ARGV[6])
  redis.call('ZADD', ARGV[5] .. 'idx:status:' .. ARGV[3], created, ARGV[6])
end
return {'recorded'}
)lua"));
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
  if (absl::SimpleAtoi(fields[at + 1].str, &status) &&
      common::v1::RequestStatus_IsValid(status)) {
    r->set_status(static_cast<common::v1::RequestStatus>(status));
  }
  if (!fields[at + 2].is_nil()) r->set_etag(fields[at + 2].str);
  if (absl::SimpleAtoi(fields[at + 3].str, &updated_ms)) {
    *r->mutable_update_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(updated_ms);
  }
  return r;
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
  const std::string idem_key =
      in.idempotency ? absl::StrCat(p, "idem:", in.idempotency->scope, ":", in.idempotency->request_id)
                     : absl::StrCat(p, "idem:-");
  std::vector<std::string> keys = {
      absl::StrCat(p, "req:", id),
      absl::StrCat(p, "hist:", id),
      idem_key,
      absl::StrCat(p, "idx:all"),
      absl::StrCat(p, "idx:status:", static_cast<int>(r.status())),
      absl::StrCat(p, "idx:instrument:", static_cast<int>(r.content().instrument())),
      common::EventKeys::Outbox(*shard, "intake")};
  std::vector<std::string> args = {
      id,
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
      ReqPrefix(*shard)};
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
  redis_.Command({"HMGET", absl::StrCat(ReqPrefix(*shard), id), "pb", "status", "etag",
                  "updated_ms"},
                 [id, done](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   if (reply->elements.size() != 4 || reply->elements[0].is_nil()) {
                     return done(absl::NotFoundError(absl::StrCat("no request with id ", id)));
                   }
                   done(ParseStored(reply->elements, 0));
                 });
}

void RedisRequestStore::List(const ListQuery& query, Done<ListPage> done) {
  struct Gather {
    absl::Mutex mu;
    int pending;
    absl::Status error;
    std::vector<ShardPage> pages;
  };
  const int shards = sharding_.shard_count();
  auto gather = std::make_shared<Gather>();
  gather->pending = shards;
  gather->pages.resize(shards);

  auto finish = [gather, query, done]() {
    if (!gather->error.ok()) return done(gather->error);
    // Only positions every unfinished shard has scanned past are known completely.
    std::optional<ListCursor> boundary;
    std::vector<v1::Request> all;
    for (auto& page : gather->pages) {
      if (!page.exhausted && page.last.has_value() &&
          (!boundary.has_value() || ComesBefore(*page.last, *boundary))) {
        boundary = page.last;
      }
      for (auto& r : page.requests) all.push_back(std::move(r));
    }
    std::sort(all.begin(), all.end(), [](const v1::Request& a, const v1::Request& b) {
      return ComesBefore(CursorOf(a), CursorOf(b));
    });
    if (boundary.has_value()) {
      auto beyond = std::find_if(all.begin(), all.end(), [&](const v1::Request& r) {
        return ComesBefore(*boundary, CursorOf(r));
      });
      all.erase(beyond, all.end());
    }
    ListPage out;
    if (all.size() > static_cast<size_t>(query.page_size)) {
      all.resize(query.page_size);
      out.next = CursorOf(all.back());
    } else {
      out.next = boundary;
    }
    out.requests = std::move(all);
    done(std::move(out));
  };

  for (int shard = 0; shard < shards; ++shard) {
    const std::string p = Sharding::Prefix(shard);
    std::string index = absl::StrCat(p, "idx:all");
    if (query.status != 0) {
      index = absl::StrCat(p, "idx:status:", static_cast<int>(query.status));
    } else if (query.instrument != 0) {
      index = absl::StrCat(p, "idx:instrument:", static_cast<int>(query.instrument));
    }
    std::vector<std::string> args = {
        query.after ? absl::StrCat(query.after->create_ms) : "+inf",
        query.after ? query.after->id : "",
        absl::StrCat(query.page_size),
        absl::StrCat(kScanBudget),
        query.status != 0 ? absl::StrCat(static_cast<int>(query.status)) : "",
        query.instrument != 0 ? absl::StrCat(static_cast<int>(query.instrument)) : "",
        query.issuing_state,
        query.requested_state,
        ReqPrefix(shard)};
    redis_.Eval(ListScript(), {index}, std::move(args),
                [gather, shard, finish](absl::StatusOr<RedisReply> reply) {
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
                    gather->pages[shard] = std::move(page);
                    last = --gather->pending == 0;
                  }
                  if (last) finish();
                });
  }
}

void RedisRequestStore::RecordEvent(const common::v1::Event& event,
                                    const common::Dedupe& dedupe,
                                    Done<common::EventHandler::Outcome> done) {
  auto shard = sharding_.ShardOf("rq", event.request_id());
  if (!shard.ok()) return done(shard.status());
  const std::string p = Sharding::Prefix(*shard);
  redis_.Eval(
      RecordEventScript(),
      {dedupe.seen_key, absl::StrCat(p, "req:", event.request_id()),
       absl::StrCat(p, "hist:", event.request_id())},
      {dedupe.retention_ms, event.SerializeAsString(),
       event.status() == common::v1::REQUEST_STATUS_UNSPECIFIED
           ? ""
           : absl::StrCat(static_cast<int>(event.status())),
       absl::StrCat(google::protobuf::util::TimeUtil::TimestampToMilliseconds(event.occur_time())),
       p, event.request_id()},
      [id = event.request_id(), done](absl::StatusOr<RedisReply> reply) {
        if (reply.ok() && !reply->elements.empty() && reply->elements[0].str == "missing") {
          return done(absl::NotFoundError(absl::StrCat("no request with id ", id)));
        }
        done(common::ReceiverOutcome(reply));
      });
}

void RedisRequestStore::History(const std::string& id,
                                Done<std::vector<common::v1::Event>> done) {
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

}  // namespace rogatory::intake
