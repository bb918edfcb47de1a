// RedisNotificationStore: inboxes and their acknowledgement pointers (an authority's shard).

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "notification_keys.h"
#include "redis_notification_store.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::notification {
namespace {

using common::LuaScript;
using common::RedisReply;

// Trims an inbox by age and reports where a stream can start. KEYS: inbox,
// floor. ARGV: min id, max length. Returns {floor, last generated id}.
const LuaScript& OpenScript() {
  static const LuaScript* s =
      new LuaScript(absl::StrCat(common::kScriptRunsWhenFull, kTrimLua, R"lua(
trim(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
local last = '0-0'
local info = redis.pcall('XINFO', 'STREAM', KEYS[1])
if type(info) == 'table' and not info.err then
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return {redis.call('GET', KEYS[2]) or '0-0', last}
)lua"));
  return *s;
}

// Reads after a position, with the floor in the same atomic step (so a trim
// between the two cannot hide a gap). KEYS: inbox, floor. ARGV: position,
// count. Returns {floor, entries...} with each entry as XRANGE gives it.
const LuaScript& ReadScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local out = {redis.call('GET', KEYS[2]) or '0-0'}
local items = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
for _, e in ipairs(items) do out[#out + 1] = e end
return out
)lua");
  return *s;
}

// KEYS: inbox, acked pointer. ARGV: cursor, max. Returns {id, event id, request
// id, ...} of the entries after the acked pointer up to and including the
// cursor.
const LuaScript& AckReadScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local acked = redis.call('GET', KEYS[2]) or '0-0'
local items = redis.call('XRANGE', KEYS[1], '(' .. acked, ARGV[1], 'COUNT', ARGV[2])
local out = {}
for _, e in ipairs(items) do
  local eid, rq = '', ''
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'eid' then eid = f[i + 1] elseif f[i] == 'rq' then rq = f[i + 1] end
  end
  out[#out + 1] = e[1]
  out[#out + 1] = eid
  out[#out + 1] = rq
end
return out
)lua");
  return *s;
}

// KEYS: acked pointer. ARGV: id. Moves the pointer forward only.
const LuaScript& AckAdvanceScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cm, cs = parse(cur)
  local nm, ns = parse(ARGV[1])
  if nm < cm or (nm == cm and ns <= cs) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
)lua");
  return *s;
}

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  return absl::SimpleAtoi(s, &v) ? v : 0;
}

}  // namespace

void RedisNotificationStore::OpenInbox(int shard, const std::string& authority,
                                       const std::string& min_id, int64_t max_length,
                                       Done<InboxBounds> done) {
  redis_.Eval(OpenScript(), {Keys::Inbox(shard, authority), Keys::InboxFloor(shard, authority)},
              {min_id, absl::StrCat(max_length)},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto bounds = common::ReplyStrings(*reply, "inbox open");
                if (!bounds.ok()) return done(bounds.status());
                if (bounds->size() < 2) {
                  return done(absl::InternalError("inbox open: Redis answered too few elements"));
                }
                done(InboxBounds{ParseStreamId((*bounds)[0]).value_or(StreamId{}),
                                 ParseStreamId((*bounds)[1]).value_or(StreamId{})});
              });
}

void RedisNotificationStore::ReadInbox(int shard, const std::string& authority,
                                       const StreamId& after, size_t count, Done<InboxPage> done) {
  redis_.Eval(ReadScript(), {Keys::Inbox(shard, authority), Keys::InboxFloor(shard, authority)},
              {after.ToString(), absl::StrCat(count)},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto elements = common::ReplyArray(*reply, "inbox read");
                if (!elements.ok()) return done(elements.status());
                if ((*elements)->empty()) {
                  return done(absl::InternalError("inbox read: Redis answered no floor"));
                }
                auto floor = common::ReplyString((**elements)[0], "inbox read");
                if (!floor.ok()) return done(floor.status());
                InboxPage page;
                page.floor = ParseStreamId(*floor).value_or(StreamId{});
                page.examined = (*elements)->size() - 1;
                for (size_t i = 1; i < (*elements)->size(); ++i) {
                  const RedisReply& e = (**elements)[i];
                  if (e.elements.size() < 2) continue;
                  auto id = ParseStreamId(e.elements[0].str);
                  if (!id) continue;
                  auto f = common::ReplyFields(e.elements[1], "inbox read");
                  if (!f.ok()) return done(f.status());
                  InboxEntry entry;
                  entry.cursor = e.elements[0].str;
                  entry.id = *id;
                  entry.event = (*f)["ev"];
                  entry.states = (*f)["st"];
                  entry.recipient_state = (*f)["tost"];
                  entry.accept_ms = ToInt((*f)["acc"]);
                  entry.reannouncement = (*f)["kind"] == "r";
                  page.entries.push_back(std::move(entry));
                }
                done(std::move(page));
              });
}

void RedisNotificationStore::ReadUnacked(int shard, const std::string& authority,
                                         const std::string& cursor, int max,
                                         Done<std::vector<Unacked>> done) {
  redis_.Eval(AckReadScript(), {Keys::Inbox(shard, authority), Keys::InboxAcked(shard, authority)},
              {cursor, absl::StrCat(max)},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto flat = common::ReplyStrings(*reply, "inbox unacknowledged");
                if (!flat.ok()) return done(flat.status());
                std::vector<Unacked> out;
                for (size_t i = 0; i + 2 < flat->size(); i += 3) {
                  out.push_back(Unacked{(*flat)[i], (*flat)[i + 1], (*flat)[i + 2]});
                }
                done(std::move(out));
              });
}

void RedisNotificationStore::AdvanceAcked(int shard, const std::string& authority,
                                          const std::string& cursor, Done<bool> done) {
  redis_.Eval(AckAdvanceScript(), {Keys::InboxAcked(shard, authority)}, {cursor},
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto moved = common::ReplyInteger(*reply, "inbox acknowledgement");
                if (!moved.ok()) return done(moved.status());
                done(*moved == 1);
              });
}

}  // namespace rogatory::notification
