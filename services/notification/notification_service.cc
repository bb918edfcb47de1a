#include "notification_service.h"

#include <algorithm>
#include <deque>
#include <map>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "endpoint_policy.h"
#include "evidence.h"
#include "google/protobuf/util/time_util.h"
#include "inbox.h"
#include "notification_keys.h"
#include "rogatory/common/codes.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/status.h"
#include "webhook_signer.h"

namespace rogatory::notification {
namespace {

using common::CallContext;
using common::LuaScript;
using common::RedisReply;
using google::protobuf::util::TimeUtil;
using Done = common::Pipeline::Done;

constexpr absl::Duration kIdempotencyTtl = absl::Hours(48);

google::protobuf::Timestamp MillisToTimestamp(int64_t ms) {
  return TimeUtil::MillisecondsToTimestamp(ms);
}

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  return absl::SimpleAtoi(s, &v) ? v : 0;
}

std::map<std::string, std::string> Fields(const RedisReply& list) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < list.elements.size(); i += 2) {
    out[list.elements[i].str] = list.elements[i + 1].str;
  }
  return out;
}

std::string EncodeList(const std::vector<std::string>& items) {
  return items.empty() ? "" : absl::StrCat(",", absl::StrJoin(items, ","), ",");
}
std::vector<std::string> DecodeList(absl::string_view encoded) {
  return absl::StrSplit(encoded, ',', absl::SkipEmpty());
}

struct EncodedFilter {
  std::string instruments, types, states;
};
EncodedFilter Encode(const v1::SubscriptionFilter& f) {
  EncodedFilter e;
  std::vector<std::string> v;
  for (int i : f.instruments()) v.push_back(absl::StrCat(i));
  e.instruments = EncodeList(v);
  v.clear();
  for (int t : f.event_types()) v.push_back(absl::StrCat(t));
  e.types = EncodeList(v);
  v.assign(f.states().begin(), f.states().end());
  e.states = EncodeList(v);
  return e;
}
void Decode(const std::string& fi, const std::string& ft, const std::string& fs,
            v1::SubscriptionFilter* f) {
  for (const auto& s : DecodeList(fi)) {
    f->add_instruments(static_cast<common::v1::Instrument>(ToInt(s)));
  }
  for (const auto& s : DecodeList(ft)) {
    f->add_event_types(static_cast<common::v1::EventType>(ToInt(s)));
  }
  for (const auto& s : DecodeList(fs)) f->add_states(s);
}

void ValidateFilter(const v1::SubscriptionFilter& f, const std::string& path,
                    common::FieldViolations& v) {
  // Each list names values of a small set; longer ones only cost memory and matching time
  // on every event (issue 8: item counts bounded).
  constexpr int kMaxFilterValues = 64;
  bool too_long = false;
  const std::pair<const char*, int> lists[] = {{"instruments", f.instruments_size()},
                                               {"event_types", f.event_types_size()},
                                               {"states", f.states_size()}};
  for (const auto& [name, size] : lists) {
    if (size > kMaxFilterValues) {
      v.Add(absl::StrCat(path, ".", name), absl::StrCat("at most ", kMaxFilterValues, " values"));
      too_long = true;
    }
  }
  if (too_long) return;
  for (int i = 0; i < f.instruments_size(); ++i) {
    if (f.instruments(i) == common::v1::INSTRUMENT_UNSPECIFIED ||
        !common::v1::Instrument_IsValid(f.instruments(i))) {
      v.Add(absl::StrCat(path, ".instruments[", i, "]"), "must be a known instrument");
    }
  }
  for (int i = 0; i < f.event_types_size(); ++i) {
    if (f.event_types(i) == common::v1::EVENT_TYPE_UNSPECIFIED ||
        !common::v1::EventType_IsValid(f.event_types(i))) {
      v.Add(absl::StrCat(path, ".event_types[", i, "]"), "must be a known event type");
    }
  }
  for (int i = 0; i < f.states_size(); ++i) {
    if (!common::IsCountryCode(f.states(i))) {
      v.Add(absl::StrCat(path, ".states[", i, "]"), "must be an ISO 3166-1 alpha-2 code");
    }
  }
}

// Need-to-know (common/access.h): delivery evidence is the recipients' (and the request's
// parties', who are its recipients) or an auditor's or a Rogatory service's to read; an
// operator runs dead letters but reads no evidence of what a request's parties were told.
bool Privileged(const common::Caller& c) { return c.HasRole("auditor") || c.is_service; }

// ---------------------------------------------------------------------------------------
// Scripts.

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

// Records retrieval in a request shard. KEYS: retrieval timers. ARGV: now ms,
// recipient, key prefix, evidence retention ms, event ids... Returns how many
// were newly retrieved.
const LuaScript& RetrievedScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local n = 0
for i = 5, #ARGV do
  local k = ARGV[3] .. 'ev:' .. ARGV[i]
  if redis.call('EXISTS', k) == 1 and
     redis.call('HSETNX', k, '3|' .. ARGV[2] .. '|', ARGV[1]) == 1 then
    redis.call('PEXPIRE', k, ARGV[4])
    n = n + 1
  end
  redis.call('ZREM', KEYS[1], ARGV[i] .. '|' .. ARGV[2])
end
return n
)lua");
  return *s;
}

// KEYS: request events (or a placeholder). ARGV: prefix, mode ('r' request |
// 'e' event), id, limit. Returns {} if unknown, else {request id, iss, exe,
// cen, tra, ntf, then event id, field, value triples}.
const LuaScript& StatusScript() {
  static const LuaScript* s = new LuaScript(R"lua(
local eids, rq
if ARGV[2] == 'r' then
  rq = ARGV[3]
  eids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)
  if #eids == 0 then return {} end
else
  rq = redis.call('HGET', ARGV[1] .. 'ev:' .. ARGV[3], 'rq')
  if not rq then return {} end
  eids = {ARGV[3]}
end
local p = redis.call('HMGET', ARGV[1] .. 'parties:' .. rq, 'iss', 'exe', 'cen', 'tra', 'ntf')
local out = {rq, p[1] or '', p[2] or '', p[3] or '', p[4] or '', p[5] or ''}
for _, e in ipairs(eids) do
  local h = redis.call('HGETALL', ARGV[1] .. 'ev:' .. e)
  for i = 1, #h, 2 do
    if h[i] ~= 'pb' and h[i] ~= 'rq' then
      out[#out + 1] = e
      out[#out + 1] = h[i]
      out[#out + 1] = h[i + 1]
    end
  end
end
return out
)lua");
  return *s;
}

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

absl::Status RedisStatus(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kUnavailable) return s;
  return absl::UnavailableError(absl::StrCat("store: ", s.message()));
}

}  // namespace

bool FilterMatches(const v1::SubscriptionFilter& filter, const common::v1::Event& event,
                   const std::vector<std::string>& states) {
  if (filter.instruments_size() > 0 &&
      std::find(filter.instruments().begin(), filter.instruments().end(), event.instrument()) ==
          filter.instruments().end()) {
    return false;
  }
  if (filter.event_types_size() > 0 &&
      std::find(filter.event_types().begin(), filter.event_types().end(), event.type()) ==
          filter.event_types().end()) {
    return false;
  }
  if (filter.states_size() > 0) {
    for (const auto& s : states) {
      if (std::find(filter.states().begin(), filter.states().end(), s) != filter.states().end()) {
        return true;
      }
    }
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Subscribe.

// One open stream: what its reactor, its Redis reads (which complete on the Redis client's
// event loop), the fan-out's wake-ups and the service's stream timer share. No thread is
// the stream's own, so idle streams cost memory only. The reactor lives until OnDone; the
// others reach it only while `finished` is false and they have just claimed the single
// write slot (so Finish, which needs that slot free, cannot have run), or to Finish it.
struct SubscribeStream {
  NotificationServiceImpl* service = nullptr;
  grpc::ServerWriteReactor<v1::SubscribeResponse>* reactor = nullptr;
  // Set before the stream is shared, constant after.
  CallContext call;
  v1::SubscribeRequest request;
  std::string who, inbox, floor_key;
  size_t capacity = 1;
  std::chrono::steady_clock::time_point opened_at;
  InboxWakeups::Handle watch = 0;

  absl::Mutex mu;
  std::deque<v1::SubscribeResponse> buffer ABSL_GUARDED_BY(mu);
  v1::SubscribeResponse current ABSL_GUARDED_BY(mu);
  bool writing ABSL_GUARDED_BY(mu) = false;
  bool finish_requested ABSL_GUARDED_BY(mu) = false;
  absl::Status finish_status ABSL_GUARDED_BY(mu);
  bool finished ABSL_GUARDED_BY(mu) = false;
  bool done ABSL_GUARDED_BY(mu) = false;
  // Where the stream starts is known (the opening script answered).
  bool opened ABSL_GUARDED_BY(mu) = false;
  // The last inbox entry read; only the one read in flight moves it.
  StreamId position ABSL_GUARDED_BY(mu);
  bool reading ABSL_GUARDED_BY(mu) = false;
  // Read once more when the read in flight ends or the buffer has room: a wake-up came
  // during the read, or the last read filled the buffer or its batch.
  bool read_again ABSL_GUARDED_BY(mu) = false;
  std::chrono::steady_clock::time_point last_sent ABSL_GUARDED_BY(mu);
};

class SubscribeReactor final : public grpc::ServerWriteReactor<v1::SubscribeResponse> {
 public:
  using Stream = std::shared_ptr<SubscribeStream>;
  using Steady = std::chrono::steady_clock;

  SubscribeReactor(NotificationServiceImpl* service, grpc::CallbackServerContext* context,
                   const v1::SubscribeRequest& request)
      : service_(service), start_(Steady::now()), st_(std::make_shared<SubscribeStream>()) {
    st_->service = service;
    st_->reactor = this;
    st_->request = request;
    auto call = service_->pipeline_.Admit(*context, "Subscribe", &request,
                                          common::Pipeline::CallKind::kStream);
    if (!call.ok()) {
      admitted_ = false;
      Finish(common::ToGrpcStatus(call.status()));
      return;
    }
    st_->call = *call;
    if (absl::Status s = Validate(); !s.ok()) {
      RequestFinish(st_, s);
      return;
    }
    if (!service_->EnterStream()) {
      RequestFinish(st_, absl::ResourceExhaustedError("too many open streams; retry later"));
      return;
    }
    entered_ = true;
    service_->metrics_.connected_subscribers().Increment();
    st_->who = st_->call.caller.authority_id;
    const int shard = service_->sharding_.ShardFor(st_->who);
    st_->inbox = Keys::Inbox(shard, st_->who);
    st_->floor_key = Keys::InboxFloor(shard, st_->who);
    st_->capacity = static_cast<size_t>(std::max(1, service_->settings_.subscriber_buffer));
    st_->opened_at = Steady::now();
    {
      absl::MutexLock lock(&st_->mu);
      st_->last_sent = st_->opened_at;
    }
    // Wake-ups are watched before the first read, so nothing the fan-out of this process
    // writes after it waits for a poll.
    service_->AddStream(st_);
    Open(st_);
  }

  void OnWriteDone(bool ok) override {
    v1::SubscribeResponse sent;
    bool read = false;
    {
      absl::MutexLock lock(&st_->mu);
      st_->writing = false;
      st_->last_sent = Steady::now();
      if (!ok && !st_->finish_requested) {
        st_->finish_requested = true;
        st_->finish_status = absl::CancelledError("stream closed");
      }
      if (ok && st_->current.has_notification()) sent = std::move(st_->current);
      read = st_->read_again && !st_->reading;
    }
    if (sent.has_notification()) RecordDelivered(sent.notification());
    Pump(st_);
    if (read) StartRead(st_);  // the buffer has room again
  }

  void OnCancel() override { RequestFinish(st_, absl::CancelledError("cancelled by the client")); }

  void OnDone() override {
    absl::Status final_status;
    {
      absl::MutexLock lock(&st_->mu);
      st_->done = true;
      final_status = st_->finish_status;
    }
    // The stream has ended: its outcome is logged, nothing is left to answer.
    if (admitted_) service_->pipeline_.Audit(st_->call, final_status, start_, [](absl::Status) {});
    if (entered_) {
      service_->RemoveStream(st_);
      service_->metrics_.connected_subscribers().Decrement();
      service_->LeaveStream();
    }
    delete this;
  }

  // Reads the inbox after the stream's position unless a read is in flight (then once
  // more after it) or the buffer is full (then once it has room). Never blocks: the read
  // completes on the Redis client's event loop.
  static void StartRead(const Stream& st) {
    size_t space = 0;
    std::string from;
    {
      absl::MutexLock lock(&st->mu);
      if (!st->opened || st->done || st->finish_requested) return;
      if (st->reading || st->buffer.size() >= st->capacity) {
        st->read_again = true;
        return;
      }
      st->reading = true;
      st->read_again = false;
      space = std::min<size_t>(st->capacity - st->buffer.size(), 100);
      from = st->position.ToString();
    }
    NotificationServiceImpl* service = st->service;
    service->OpStarted();
    service->redis_.Eval(ReadScript(), {st->inbox, st->floor_key}, {from, absl::StrCat(space)},
                         [st, space](absl::StatusOr<RedisReply> read) {
                           absl::Cleanup ended = [service = st->service] { service->OpEnded(); };
                           OnRead(st, std::move(read), space);
                         });
  }

  // What the service's stream timer does for every open stream each poll interval: ends
  // it at its maximum age, sends a heartbeat when it has been idle, and reads what other
  // replicas' fan-out wrote (this process's fan-out wakes the stream at once instead).
  static void Tick(const Stream& st, Steady::time_point now) {
    const NotificationSettings& settings = st->service->settings_;
    if (settings.stream_max_age > absl::ZeroDuration() &&
        now - st->opened_at >= absl::ToChronoMilliseconds(settings.stream_max_age)) {
      return RequestFinish(
          st, absl::UnavailableError("the stream reached its maximum age (stream-max-age): "
                                     "subscribe again with the last cursor received"));
    }
    bool pump = false;
    {
      absl::MutexLock lock(&st->mu);
      if (st->done || st->finish_requested || !st->opened) return;
      if (!st->reading && st->buffer.empty() && !st->writing &&
          now - st->last_sent >= absl::ToChronoMilliseconds(settings.heartbeat_interval)) {
        v1::SubscribeResponse hb;
        *hb.mutable_heartbeat()->mutable_server_time() =
            TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(st->service->clock_.Now()));
        st->buffer.push_back(std::move(hb));
        st->last_sent = now;
        pump = true;
      }
    }
    if (pump) Pump(st);
    StartRead(st);
  }

 private:
  absl::Status Validate() {
    common::FieldViolations v;
    const v1::SubscribeRequest& request = st_->request;
    if (!request.cursor().empty() && !ParseStreamId(request.cursor())) {
      v.Add("cursor", "is not a cursor this service issued");
    }
    if (!v1::StartPosition_IsValid(request.start_position())) {
      v.Add("start_position", "must be LIVE or OLDEST");
    }
    ValidateFilter(request.filter(), "filter", v);
    return v.ToStatus();
  }

  // Trims the inbox and finds where the stream starts (asynchronously).
  static void Open(const Stream& st) {
    NotificationServiceImpl* service = st->service;
    const NotificationSettings& settings = service->settings_;
    const int64_t now_ms = absl::ToUnixMillis(service->clock_.Now());
    std::string min_id = absl::StrCat(
        std::max<int64_t>(0, now_ms - absl::ToInt64Milliseconds(settings.inbox_retention_age)),
        "-0");
    service->OpStarted();
    service->redis_.Eval(OpenScript(), {st->inbox, st->floor_key},
                         {std::move(min_id), absl::StrCat(settings.inbox_max_length)},
                         [st](absl::StatusOr<RedisReply> opened) {
                           absl::Cleanup ended = [service = st->service] { service->OpEnded(); };
                           OnOpened(st, std::move(opened));
                         });
  }

  static void OnOpened(const Stream& st, absl::StatusOr<RedisReply> opened) {
    if (!opened.ok() || opened->elements.size() < 2) {
      return RequestFinish(st, absl::UnavailableError("inbox store unavailable"));
    }
    const v1::SubscribeRequest& request = st->request;
    const StreamId floor = ParseStreamId(opened->elements[0].str).value_or(StreamId{});
    const StreamId last = ParseStreamId(opened->elements[1].str).value_or(StreamId{});
    StreamId position;
    if (!request.cursor().empty()) {
      position = *ParseStreamId(request.cursor());
      if (position < floor) {
        return RequestFinish(
            st, absl::OutOfRangeError("the cursor is older than the inbox's retention: "
                                      "notifications after it were discarded"));
      }
      if (last < position) {
        common::FieldViolations v;
        v.Add("cursor", "is not in this inbox");
        return RequestFinish(st, v.ToStatus());
      }
    } else if (request.start_position() == v1::START_POSITION_OLDEST) {
      position = floor;
    } else {
      position = last;
    }
    {
      absl::MutexLock lock(&st->mu);
      st->position = position;
      st->opened = true;
    }
    StartRead(st);
  }

  static void OnRead(const Stream& st, absl::StatusOr<RedisReply> read, size_t asked) {
    if (!read.ok() || read->elements.empty()) {
      {
        absl::MutexLock lock(&st->mu);
        st->reading = false;
      }
      return RequestFinish(st, absl::UnavailableError("inbox store unavailable"));
    }
    StreamId position;
    {
      absl::MutexLock lock(&st->mu);
      position = st->position;
    }
    if (position < ParseStreamId(read->elements[0].str).value_or(StreamId{})) {
      {
        absl::MutexLock lock(&st->mu);
        st->reading = false;
      }
      return RequestFinish(st,
                           absl::OutOfRangeError("the stream fell behind the inbox's retention: "
                                                 "resubscribe from the oldest notification"));
    }
    const CallContext& call = st->call;
    std::vector<v1::SubscribeResponse> batch;
    for (size_t i = 1; i < read->elements.size(); ++i) {
      const RedisReply& e = read->elements[i];
      if (e.elements.size() < 2) continue;
      auto id = ParseStreamId(e.elements[0].str);
      if (!id) continue;
      position = *id;
      auto f = Fields(e.elements[1]);
      v1::SubscribeResponse r;
      v1::Notification* n = r.mutable_notification();
      if (!n->mutable_event()->ParseFromString(f["ev"])) continue;
      if (!FilterMatches(st->request.filter(), n->event(), DecodeList(f["st"]))) continue;
      n->set_cursor(e.elements[0].str);
      // Disclosed to the caller, its own inbox's owner: noted on the call's audit trail.
      call.Touch(n->event().request_id(), common::AccessKind::kDisclose, n->event().event_id());
      n->mutable_recipient()->set_authority_id(st->who);
      n->mutable_recipient()->set_state(f["tost"].empty() ? call.caller.state : f["tost"]);
      *n->mutable_accept_time() = MillisToTimestamp(ToInt(f["acc"]));
      n->set_reannouncement(f["kind"] == "r");
      batch.push_back(std::move(r));
    }
    bool again = false;
    {
      absl::MutexLock lock(&st->mu);
      st->reading = false;
      st->position = position;
      if (st->done || st->finish_requested) return;
      for (auto& r : batch) st->buffer.push_back(std::move(r));
      // A full batch: more may be waiting. A wake-up during the read: read what it was
      // about.
      again = st->read_again || read->elements.size() - 1 >= asked;
      st->read_again = false;
    }
    Pump(st);
    if (again) StartRead(st);
  }

  // Asks for the stream to end with `status` once the write in flight (if any)
  // completes.
  static void RequestFinish(const Stream& st, absl::Status status) {
    {
      absl::MutexLock lock(&st->mu);
      if (st->finish_requested) return;
      st->finish_requested = true;
      st->finish_status = std::move(status);
    }
    Pump(st);
  }

  // Starts the next write, or Finish when asked and idle. Never holds the lock
  // across gRPC.
  static void Pump(const Stream& st) {
    bool write = false, finish = false;
    grpc::Status finish_status;
    {
      absl::MutexLock lock(&st->mu);
      if (st->finished || st->writing) return;
      if (st->finish_requested) {
        st->finished = true;
        finish = true;
        finish_status = common::ToGrpcStatus(st->finish_status);
      } else if (!st->buffer.empty()) {
        st->current = std::move(st->buffer.front());
        st->buffer.pop_front();
        st->writing = true;
        write = true;
      }
    }
    if (write) {
      st->reactor->StartWrite(&st->current);
    } else if (finish) {
      st->reactor->Finish(finish_status);
    }
  }

  void RecordDelivered(const v1::Notification& n) {
    if (service_->auditor_ != nullptr) {
      // A disclosure to the subscriber. The stream cannot wait for the log, so a failure
      // is reported loudly (and counted by the auditor's metrics).
      common::AuditRecord record;
      record.method = "Subscribe";
      record.caller = st_->call.caller;
      record.trace_id = st_->call.trace_id;
      record.justification = st_->call.justification;
      record.subjects.push_back({n.event().request_id(), common::AccessKind::kDisclose,
                                 absl::StrCat("stream:", n.event().event_id())});
      service_->auditor_->Record(std::move(record), [](absl::Status logged) {
        if (!logged.ok()) {
          common::Log::Error("stream delivery could not be audited",
                             {{"error", std::string(logged.message())}});
        }
      });
    }
    auto shard = service_->sharding_.ShardOf("rq", n.event().request_id());
    if (!shard.ok()) return;
    const absl::Time now = service_->clock_.Now();
    const absl::Time accepted =
        absl::FromUnixMillis(TimeUtil::TimestampToMilliseconds(n.accept_time()));
    NotificationMetrics& metrics = service_->metrics_;
    RecordStage(
        service_->redis_, *shard, n.event().event_id(), v1::DELIVERY_STAGE_DELIVERED,
        n.recipient().authority_id(), "", now, service_->settings_.evidence_retention,
        [&metrics, latency = absl::ToDoubleSeconds(now - accepted)](absl::StatusOr<bool> fresh) {
          if (fresh.ok() && *fresh) metrics.DeliveryLatency("stream", std::max(0.0, latency));
        });
  }

  NotificationServiceImpl* const service_;
  const Steady::time_point start_;
  const Stream st_;
  bool admitted_ = true;
  bool entered_ = false;
};

NotificationServiceImpl::NotificationServiceImpl(
    common::RedisClient& redis, const common::Clock& clock, common::Pipeline& pipeline,
    common::Sharding sharding, NotificationSettings settings, NotificationMetrics& metrics,
    NotificationEventHandler& handler)
    : redis_(redis),
      clock_(clock),
      pipeline_(pipeline),
      sharding_(sharding),
      settings_(settings),
      metrics_(metrics),
      handler_(handler),
      stream_timer_([this] { StreamTimerLoop(); }) {}

NotificationServiceImpl::~NotificationServiceImpl() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  stream_timer_.join();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &pending_ops_));
}

bool NotificationServiceImpl::EnterStream() {
  absl::MutexLock lock(&mu_);
  if (open_streams_ >= settings_.max_subscribers) return false;
  ++open_streams_;
  return true;
}
void NotificationServiceImpl::LeaveStream() {
  absl::MutexLock lock(&mu_);
  --open_streams_;
}
void NotificationServiceImpl::OpStarted() {
  absl::MutexLock lock(&mu_);
  ++pending_ops_;
}
void NotificationServiceImpl::OpEnded() {
  absl::MutexLock lock(&mu_);
  --pending_ops_;
}

void NotificationServiceImpl::AddStream(const std::shared_ptr<SubscribeStream>& stream) {
  if (inbox_wakeups_ != nullptr) {
    // Runs under the wake-ups' lock on the fan-out's thread: only queues the stream for
    // the stream timer, which reads.
    stream->watch =
        inbox_wakeups_->Watch(stream->inbox, [this, weak = std::weak_ptr<SubscribeStream>(stream)] {
          if (auto st = weak.lock()) {
            absl::MutexLock lock(&mu_);
            woken_.push_back(std::move(st));
          }
        });
  }
  absl::MutexLock lock(&mu_);
  streams_.emplace(stream.get(), stream);
}

void NotificationServiceImpl::RemoveStream(const std::shared_ptr<SubscribeStream>& stream) {
  if (inbox_wakeups_ != nullptr) inbox_wakeups_->Unwatch(stream->inbox, stream->watch);
  absl::MutexLock lock(&mu_);
  streams_.erase(stream.get());
}

void NotificationServiceImpl::StreamTimerLoop() {
  using Steady = std::chrono::steady_clock;
  const auto interval = absl::ToChronoMilliseconds(settings_.poll_interval);
  auto next_tick = Steady::now() + interval;
  while (true) {
    std::vector<std::shared_ptr<SubscribeStream>> woken, ticked;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !woken_.empty(); };
      mu_.AwaitWithTimeout(
          absl::Condition(&ready),
          absl::FromChrono(std::max(Steady::duration::zero(), next_tick - Steady::now())));
      if (stopping_) return;
      woken.swap(woken_);
      if (Steady::now() >= next_tick) {
        ticked.reserve(streams_.size());
        for (const auto& [key, stream] : streams_) ticked.push_back(stream);
        next_tick = Steady::now() + interval;
      }
    }
    for (const auto& st : woken) SubscribeReactor::StartRead(st);
    const auto now = Steady::now();
    for (const auto& st : ticked) SubscribeReactor::Tick(st, now);
  }
}

grpc::ServerWriteReactor<v1::SubscribeResponse>* NotificationServiceImpl::Subscribe(
    grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) {
  return new SubscribeReactor(this, context, *request);
}

// ---------------------------------------------------------------------------------------
// Ack.

grpc::ServerUnaryReactor* NotificationServiceImpl::Ack(grpc::CallbackServerContext* context,
                                                       const v1::AckRequest* request,
                                                       v1::AckResponse* response) {
  return pipeline_.Unary<v1::AckRequest, v1::AckResponse>(
      context, "Ack", request, response,
      [](const v1::AckRequest& r) {
        common::FieldViolations v;
        if (r.cursor().empty()) {
          v.Add("cursor", "is required");
        } else if (!ParseStreamId(r.cursor())) {
          v.Add("cursor", "is not a cursor this service issued");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::AckRequest& r, v1::AckResponse* resp, Done done) {
        const std::string who = call.caller.authority_id;
        const int shard = sharding_.ShardFor(who);
        redis_.Eval(AckReadScript(), {Keys::Inbox(shard, who), Keys::InboxAcked(shard, who)},
                    {r.cursor(), absl::StrCat(kMaxAckBatch)},
                    [this, who, shard, resp, done](absl::StatusOr<RedisReply> reply) {
                      if (!reply.ok()) return done(RedisStatus(reply.status()));
                      if (reply->elements.empty()) return done(absl::OkStatus());
                      // Group the notifications by their request's shard.
                      std::map<int, std::vector<std::string>> by_shard;
                      std::string last_id;
                      for (size_t i = 0; i + 2 < reply->elements.size(); i += 3) {
                        last_id = reply->elements[i].str;
                        auto s = sharding_.ShardOf("rq", reply->elements[i + 2].str);
                        if (s.ok()) by_shard[*s].push_back(reply->elements[i + 1].str);
                      }
                      struct Join {
                        absl::Mutex mu;
                        int pending;
                        int retrieved = 0;
                        absl::Status status;
                      };
                      auto join = std::make_shared<Join>();
                      join->pending = static_cast<int>(by_shard.size());
                      auto advance = [this, who, shard, last_id, resp, done, join] {
                        if (!join->status.ok()) return done(join->status);
                        resp->set_retrieved_count(join->retrieved);
                        // Move the pointer only after retrieval is recorded: a crash in
                        // between repeats the (idempotent) recording, never skips it.
                        redis_.Eval(AckAdvanceScript(), {Keys::InboxAcked(shard, who)}, {last_id},
                                    [done](absl::StatusOr<RedisReply> r) {
                                      done(r.ok() ? absl::OkStatus() : RedisStatus(r.status()));
                                    });
                      };
                      if (by_shard.empty()) return advance();
                      const std::string now = absl::StrCat(absl::ToUnixMillis(clock_.Now()));
                      for (auto& [s, eids] : by_shard) {
                        std::vector<std::string> args = {
                            now, who, Keys::P(s),
                            absl::StrCat(absl::ToInt64Milliseconds(settings_.evidence_retention))};
                        args.insert(args.end(), eids.begin(), eids.end());
                        redis_.Eval(RetrievedScript(), {Keys::RetrievalDue(s)}, std::move(args),
                                    [join, advance](absl::StatusOr<RedisReply> r) {
                                      bool last = false;
                                      {
                                        absl::MutexLock lock(&join->mu);
                                        if (r.ok()) {
                                          join->retrieved += static_cast<int>(r->integer);
                                        } else {
                                          join->status = RedisStatus(r.status());
                                        }
                                        last = --join->pending == 0;
                                      }
                                      if (last) advance();
                                    });
                      }
                    });
      });
}

// ---------------------------------------------------------------------------------------
// PublishEvent.

grpc::ServerUnaryReactor* NotificationServiceImpl::PublishEvent(
    grpc::CallbackServerContext* context, const v1::PublishEventRequest* request,
    v1::PublishEventResponse* response) {
  return pipeline_.Unary<v1::PublishEventRequest, v1::PublishEventResponse>(
      context, "PublishEvent", request, response,
      [this](const v1::PublishEventRequest& r) {
        common::FieldViolations v;
        if (r.event().event_id().empty() || r.event().event_id().size() > 64) {
          v.Add("event.event_id", "is required (at most 64 characters)");
        }
        if (!sharding_.ShardOf("rq", r.event().request_id()).ok()) {
          v.Add("event.request_id", "must be a request id");
        }
        if (r.event().type() == common::v1::EVENT_TYPE_UNSPECIFIED) {
          v.Add("event.type", "is required");
        }
        for (int i = 0; i < r.extra_recipients_size(); ++i) {
          if (r.extra_recipients(i).authority_id().empty()) {
            v.Add(absl::StrCat("extra_recipients[", i, "].authority_id"), "is required");
          }
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::PublishEventRequest& r,
             v1::PublishEventResponse* resp, Done done) {
        // Rogatory services only: an event names a request's parties, which the receiving
        // script records, so an injected event could rewrite whom a request concerns
        // (issue 16, item 5). Operators run the system through dead-letter redrives, never
        // by writing events.
        if (!call.caller.is_service) {
          return done(absl::PermissionDeniedError("PublishEvent is for Rogatory services only"));
        }
        const int shard = *sharding_.ShardOf("rq", r.event().request_id());
        common::Dedupe dedupe{common::EventKeys::Seen(shard, "notification", r.event().event_id()),
                              absl::StrCat(absl::ToInt64Milliseconds(settings_.dedupe_retention))};
        std::vector<common::v1::AuthorityRef> extras(r.extra_recipients().begin(),
                                                     r.extra_recipients().end());
        handler_.HandleWithExtras(
            r.event(), dedupe, extras,
            [resp, done](absl::StatusOr<common::EventHandler::Outcome> outcome) {
              if (!outcome.ok()) return done(RedisStatus(outcome.status()));
              resp->set_accepted(*outcome == common::EventHandler::Outcome::kHandled);
              done(absl::OkStatus());
            });
      });
}

// ---------------------------------------------------------------------------------------
// Subscriptions.

namespace {
void FillSubscription(const std::string& id, const common::Caller& owner, const std::string& uri,
                      const std::string& fi, const std::string& ft, const std::string& fs,
                      const std::string& ct, const std::string& rot, v1::Subscription* out) {
  out->set_id(id);
  out->mutable_owner()->set_authority_id(owner.authority_id);
  out->mutable_owner()->set_state(owner.state);
  out->set_endpoint_uri(uri);
  Decode(fi, ft, fs, out->mutable_filter());
  *out->mutable_create_time() = MillisToTimestamp(ToInt(ct));
  if (!rot.empty()) *out->mutable_secret_rotate_time() = MillisToTimestamp(ToInt(rot));
}
}  // namespace

grpc::ServerUnaryReactor* NotificationServiceImpl::CreateSubscription(
    grpc::CallbackServerContext* context, const v1::CreateSubscriptionRequest* request,
    v1::CreateSubscriptionResponse* response) {
  return pipeline_.Unary<v1::CreateSubscriptionRequest, v1::CreateSubscriptionResponse>(
      context, "CreateSubscription", request, response,
      [this](const v1::CreateSubscriptionRequest& r) {
        common::FieldViolations v;
        if (r.request_id().size() > 128) v.Add("request_id", "is longer than 128 characters");
        auto endpoint = CheckEndpointUri(r.endpoint_uri(), settings_.webhook_endpoint_policy());
        if (!endpoint.ok()) v.Add("endpoint_uri", std::string(endpoint.status().message()));
        ValidateFilter(r.filter(), "filter", v);
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::CreateSubscriptionRequest& r,
             v1::CreateSubscriptionResponse* resp, Done done) {
        const common::Caller caller = call.caller;
        const int shard = sharding_.ShardFor(caller.authority_id);
        const absl::Time now = clock_.Now();
        const std::string id = common::Sharding::MakeId("sub", shard, now);
        const std::string secret = NewWebhookSecret();
        const EncodedFilter f = Encode(r.filter());
        const std::string fp =
            r.request_id().empty()
                ? ""
                : common::Sha256Hex(absl::StrCat(r.endpoint_uri(), "\n", f.instruments, "\n",
                                                 f.types, "\n", f.states));
        const std::string now_ms = absl::StrCat(absl::ToUnixMillis(now));
        redis_.Eval(
            CreateSubscriptionScript(),
            {Keys::Idempotency(shard, caller.authority_id, r.request_id()),
             Keys::OwnerSubscriptions(shard, caller.authority_id), Keys::Subscription(shard, id)},
            {fp, id, r.endpoint_uri(), f.instruments, f.types, f.states, caller.authority_id,
             caller.state, now_ms, secret, absl::StrCat(absl::ToInt64Milliseconds(kIdempotencyTtl)),
             absl::StrCat(kMaxSubscriptionsPerOwner), Keys::P(shard)},
            [caller, id, secret, f, now_ms, uri = r.endpoint_uri(), resp,
             done](absl::StatusOr<RedisReply> reply) {
              if (!reply.ok()) return done(RedisStatus(reply.status()));
              const auto& e = reply->elements;
              const std::string outcome = e.empty() ? "" : e[0].str;
              if (outcome == "conflict") {
                return done(
                    absl::AlreadyExistsError("request_id was used for a different subscription"));
              }
              if (outcome == "gone") {
                return done(
                    absl::NotFoundError("the subscription this request_id created was deleted"));
              }
              if (outcome == "limit") {
                return done(absl::ResourceExhaustedError(
                    absl::StrCat("at most ", kMaxSubscriptionsPerOwner, " subscriptions")));
              }
              if (outcome == "replayed" && e.size() >= 9) {
                FillSubscription(e[1].str, caller, e[2].str, e[3].str, e[4].str, e[5].str, e[6].str,
                                 e[8].str, resp->mutable_subscription());
                resp->set_signing_secret(e[7].str);
                return done(absl::OkStatus());
              }
              FillSubscription(id, caller, uri, f.instruments, f.types, f.states, now_ms, "",
                               resp->mutable_subscription());
              resp->set_signing_secret(secret);
              common::Log::Info("webhook subscription created",
                                {{"subscription_id", id}, {"owner", caller.authority_id}});
              done(absl::OkStatus());
            });
      });
}

grpc::ServerUnaryReactor* NotificationServiceImpl::ListSubscriptions(
    grpc::CallbackServerContext* context, const v1::ListSubscriptionsRequest* request,
    v1::ListSubscriptionsResponse* response) {
  return pipeline_.Unary<v1::ListSubscriptionsRequest, v1::ListSubscriptionsResponse>(
      context, "ListSubscriptions", request, response, nullptr,
      [this](const CallContext& call, const v1::ListSubscriptionsRequest&,
             v1::ListSubscriptionsResponse* resp, Done done) {
        const common::Caller caller = call.caller;
        const int shard = sharding_.ShardFor(caller.authority_id);
        redis_.Eval(ListSubscriptionsScript(),
                    {Keys::OwnerSubscriptions(shard, caller.authority_id)}, {Keys::P(shard)},
                    [caller, resp, done](absl::StatusOr<RedisReply> reply) {
                      if (!reply.ok()) return done(RedisStatus(reply.status()));
                      const auto& e = reply->elements;
                      for (size_t i = 0; i + 6 < e.size(); i += 7) {
                        FillSubscription(e[i].str, caller, e[i + 1].str, e[i + 2].str, e[i + 3].str,
                                         e[i + 4].str, e[i + 5].str, e[i + 6].str,
                                         resp->add_subscriptions());
                      }
                      std::sort(resp->mutable_subscriptions()->begin(),
                                resp->mutable_subscriptions()->end(),
                                [](const v1::Subscription& a, const v1::Subscription& b) {
                                  return a.id() < b.id();
                                });
                      done(absl::OkStatus());
                    });
      });
}

grpc::ServerUnaryReactor* NotificationServiceImpl::DeleteSubscription(
    grpc::CallbackServerContext* context, const v1::DeleteSubscriptionRequest* request,
    v1::DeleteSubscriptionResponse* response) {
  return pipeline_.Unary<v1::DeleteSubscriptionRequest, v1::DeleteSubscriptionResponse>(
      context, "DeleteSubscription", request, response,
      [this](const v1::DeleteSubscriptionRequest& r) {
        common::FieldViolations v;
        if (!sharding_.ShardOf("sub", r.subscription_id()).ok()) {
          v.Add("subscription_id", "must be a subscription id");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::DeleteSubscriptionRequest& r,
             v1::DeleteSubscriptionResponse*, Done done) {
        const std::string who = call.caller.authority_id;
        const int shard = *sharding_.ShardOf("sub", r.subscription_id());
        if (shard != sharding_.ShardFor(who)) {
          return done(absl::NotFoundError("no such subscription of the caller"));
        }
        redis_.Eval(
            DeleteSubscriptionScript(),
            {Keys::OwnerSubscriptions(shard, who), Keys::Subscription(shard, r.subscription_id())},
            {r.subscription_id(), who},
            [done, id = r.subscription_id()](absl::StatusOr<RedisReply> reply) {
              if (!reply.ok()) return done(RedisStatus(reply.status()));
              if (reply->str == "foreign") {
                return done(absl::NotFoundError("no such subscription of the caller"));
              }
              if (reply->str == "deleted") {
                common::Log::Info("webhook subscription deleted", {{"subscription_id", id}});
              }
              done(absl::OkStatus());
            });
      });
}

grpc::ServerUnaryReactor* NotificationServiceImpl::RotateSubscriptionSecret(
    grpc::CallbackServerContext* context, const v1::RotateSubscriptionSecretRequest* request,
    v1::RotateSubscriptionSecretResponse* response) {
  return pipeline_.Unary<v1::RotateSubscriptionSecretRequest, v1::RotateSubscriptionSecretResponse>(
      context, "RotateSubscriptionSecret", request, response,
      [this](const v1::RotateSubscriptionSecretRequest& r) {
        common::FieldViolations v;
        if (!sharding_.ShardOf("sub", r.subscription_id()).ok()) {
          v.Add("subscription_id", "must be a subscription id");
        }
        if (r.has_previous_secret_validity() &&
            (r.previous_secret_validity().seconds() < 0 ||
             r.previous_secret_validity().seconds() > 30 * 24 * 3600)) {
          v.Add("previous_secret_validity", "must lie between 0 and 30 days");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::RotateSubscriptionSecretRequest& r,
             v1::RotateSubscriptionSecretResponse* resp, Done done) {
        const common::Caller caller = call.caller;
        const int shard = *sharding_.ShardOf("sub", r.subscription_id());
        if (shard != sharding_.ShardFor(caller.authority_id)) {
          return done(absl::NotFoundError("no such subscription of the caller"));
        }
        const absl::Time now = clock_.Now();
        const absl::Duration overlap =
            r.has_previous_secret_validity()
                ? absl::Seconds(r.previous_secret_validity().seconds()) +
                      absl::Nanoseconds(r.previous_secret_validity().nanos())
                : settings_.webhook_secret_overlap;
        const int64_t expire_ms = absl::ToUnixMillis(now + overlap);
        const std::string secret = NewWebhookSecret();
        const std::string now_ms = absl::StrCat(absl::ToUnixMillis(now));
        redis_.Eval(RotateScript(), {Keys::Subscription(shard, r.subscription_id())},
                    {caller.authority_id, secret, now_ms, absl::StrCat(expire_ms)},
                    [caller, id = r.subscription_id(), secret, now_ms, expire_ms, resp,
                     done](absl::StatusOr<RedisReply> reply) {
                      if (!reply.ok()) return done(RedisStatus(reply.status()));
                      const auto& e = reply->elements;
                      if (e.size() < 6 || e[0].str != "ok") {
                        return done(absl::NotFoundError("no such subscription of the caller"));
                      }
                      FillSubscription(id, caller, e[1].str, e[2].str, e[3].str, e[4].str, e[5].str,
                                       now_ms, resp->mutable_subscription());
                      resp->set_signing_secret(secret);
                      *resp->mutable_previous_secret_expire_time() = MillisToTimestamp(expire_ms);
                      common::Log::Info("webhook secret rotated", {{"subscription_id", id}});
                      done(absl::OkStatus());
                    });
      });
}

// ---------------------------------------------------------------------------------------
// Delivery evidence.

grpc::ServerUnaryReactor* NotificationServiceImpl::GetDeliveryStatus(
    grpc::CallbackServerContext* context, const v1::GetDeliveryStatusRequest* request,
    v1::GetDeliveryStatusResponse* response) {
  return pipeline_.Unary<v1::GetDeliveryStatusRequest, v1::GetDeliveryStatusResponse>(
      context, "GetDeliveryStatus", request, response,
      [this](const v1::GetDeliveryStatusRequest& r) {
        common::FieldViolations v;
        switch (r.target_case()) {
          case v1::GetDeliveryStatusRequest::kEventId:
            if (r.event_id().empty() || r.event_id().size() > 128) {
              v.Add("event_id", "is required (at most 128 characters)");
            }
            break;
          case v1::GetDeliveryStatusRequest::kRequestId:
            if (!sharding_.ShardOf("rq", r.request_id()).ok()) {
              v.Add("request_id", "must be a request id");
            }
            break;
          default:
            v.Add("target", "one of event_id or request_id is required");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::GetDeliveryStatusRequest& r,
             v1::GetDeliveryStatusResponse* resp, Done done) {
        struct Join {
          absl::Mutex mu;
          int pending = 0;
          std::vector<RedisReply> found;
          absl::Status status;
        };
        auto join = std::make_shared<Join>();
        const common::Caller caller = call.caller;
        auto finish = [join, caller, call, resp, done] {
          if (!join->status.ok()) return done(join->status);
          // The request's parties (issuing, executing, central: fields 1-3; the notified
          // authority, field 5, with the executing side's read rights) see the evidence of
          // every delivery of it; its translator (field 4) only of its own deliveries.
          bool any = false, see_all = Privileged(caller), allowed = see_all;
          for (const RedisReply& rep : join->found) {
            const auto& e = rep.elements;
            if (e.size() < 6) continue;
            any = true;
            for (int k : {1, 2, 3, 5}) {
              if (e[k].str == caller.authority_id) see_all = allowed = true;
            }
            if (e[4].str == caller.authority_id) allowed = true;
          }
          if (!any || !allowed) return done(absl::NotFoundError("no delivery evidence found"));
          for (const RedisReply& rep : join->found) {
            if (!rep.elements.empty() && !rep.elements[0].str.empty()) {
              call.Touch(rep.elements[0].str, common::AccessKind::kRead, "delivery evidence");
            }
          }
          for (const RedisReply& rep : join->found) {
            const auto& e = rep.elements;
            if (e.size() < 6) continue;
            for (size_t i = 6; i + 2 < e.size(); i += 3) {
              std::vector<std::string> parts = absl::StrSplit(e[i + 1].str, '|');
              if (parts.size() != 3) continue;
              if (!see_all && parts[1] != caller.authority_id) continue;
              auto* ev = resp->add_evidences();
              ev->set_event_id(e[i].str);
              ev->set_request_id(e[0].str);
              ev->mutable_recipient()->set_authority_id(parts[1]);
              ev->set_stage(static_cast<v1::DeliveryStage>(ToInt(parts[0])));
              ev->set_subscription_id(parts[2]);
              *ev->mutable_record_time() = MillisToTimestamp(ToInt(e[i + 2].str));
            }
          }
          std::stable_sort(resp->mutable_evidences()->begin(), resp->mutable_evidences()->end(),
                           [](const v1::DeliveryEvidence& a, const v1::DeliveryEvidence& b) {
                             const int64_t ta = TimeUtil::TimestampToMilliseconds(a.record_time());
                             const int64_t tb = TimeUtil::TimestampToMilliseconds(b.record_time());
                             if (ta != tb) return ta < tb;
                             if (a.event_id() != b.event_id()) return a.event_id() < b.event_id();
                             return a.stage() < b.stage();
                           });
          done(absl::OkStatus());
        };
        auto on_reply = [join, finish](absl::StatusOr<RedisReply> reply) {
          bool last = false;
          {
            absl::MutexLock lock(&join->mu);
            if (!reply.ok()) {
              join->status = RedisStatus(reply.status());
            } else if (!reply->elements.empty()) {
              join->found.push_back(*std::move(reply));
            }
            last = --join->pending == 0;
          }
          if (last) finish();
        };
        if (r.target_case() == v1::GetDeliveryStatusRequest::kRequestId) {
          const int shard = *sharding_.ShardOf("rq", r.request_id());
          join->pending = 1;
          redis_.Eval(StatusScript(), {Keys::RequestEvents(shard, r.request_id())},
                      {Keys::P(shard), "r", r.request_id(), absl::StrCat(kMaxEventsPerStatus)},
                      on_reply);
          return;
        }
        // An event id does not name its request's shard: ask every shard (a
        // fixed number of small lookups, in parallel).
        join->pending = sharding_.shard_count();
        for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
          redis_.Eval(StatusScript(), {Keys::Evidence(shard, r.event_id())},
                      {Keys::P(shard), "e", r.event_id(), "1"}, on_reply);
        }
      });
}

// ---------------------------------------------------------------------------------------
// Dead letters.

namespace {
struct DeadPage {
  int shard = 0;
  int64_t offset = 0;
};
std::optional<DeadPage> ParseDeadToken(absl::string_view token) {
  if (token.empty()) return DeadPage{};
  std::pair<std::string, std::string> p = absl::StrSplit(token, absl::MaxSplits(':', 1));
  DeadPage page;
  if (!absl::SimpleAtoi(p.first, &page.shard) || !absl::SimpleAtoi(p.second, &page.offset) ||
      page.shard < 0 || page.offset < 0) {
    return std::nullopt;
  }
  return page;
}
}  // namespace

grpc::ServerUnaryReactor* NotificationServiceImpl::ListDeadLetters(
    grpc::CallbackServerContext* context, const v1::ListDeadLettersRequest* request,
    v1::ListDeadLettersResponse* response) {
  return pipeline_.Unary<v1::ListDeadLettersRequest, v1::ListDeadLettersResponse>(
      context, "ListDeadLetters", request, response,
      [this](const v1::ListDeadLettersRequest& r) {
        common::FieldViolations v;
        if (r.page_size() < 0 || r.page_size() > 500) v.Add("page_size", "must be 0 to 500");
        auto page = ParseDeadToken(r.page_token());
        if (!page || page->shard >= sharding_.shard_count()) {
          v.Add("page_token", "is not a token this service issued");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::ListDeadLettersRequest& r,
             v1::ListDeadLettersResponse* resp, Done done) {
        const bool operator_view = call.caller.HasRole("operator");
        const std::string owner = operator_view ? "" : call.caller.authority_id;
        const int own_shard = sharding_.ShardFor(call.caller.authority_id);
        DeadPage page = *ParseDeadToken(r.page_token());
        if (!operator_view && page.shard < own_shard) page = DeadPage{own_shard, 0};
        const int last_shard = operator_view ? sharding_.shard_count() - 1 : own_shard;
        const int want = r.page_size() == 0 ? 100 : r.page_size();
        // Walks the shards one Redis call at a time until the page is full.
        auto step = std::make_shared<std::function<void(DeadPage)>>();
        *step = [this, step, owner, last_shard, want, resp, done](DeadPage at) {
          if (at.shard > last_shard) {
            *step = nullptr;  // break the self-reference
            return done(absl::OkStatus());
          }
          const int count = want - resp->dead_letters_size();
          redis_.Eval(ListDeadScript(), {Keys::DeadLetters(at.shard)},
                      {absl::StrCat(at.offset), absl::StrCat(count), Keys::P(at.shard), owner},
                      [this, step, at, count, want, resp, done](absl::StatusOr<RedisReply> reply) {
                        if (!reply.ok()) {
                          auto s = RedisStatus(reply.status());
                          *step = nullptr;
                          return done(s);
                        }
                        const auto& e = reply->elements;
                        const int64_t examined = e.empty() ? 0 : e[0].integer;
                        for (size_t i = 1; i + 8 < e.size(); i += 9) {
                          auto* d = resp->add_dead_letters();
                          d->set_id(e[i].str);
                          *d->mutable_dead_time() = MillisToTimestamp(ToInt(e[i + 1].str));
                          d->set_subscription_id(e[i + 2].str);
                          d->set_event_id(e[i + 3].str);
                          d->set_request_id(e[i + 4].str);
                          d->mutable_recipient()->set_authority_id(e[i + 5].str);
                          d->mutable_recipient()->set_state(e[i + 6].str);
                          d->set_attempts(static_cast<int32_t>(ToInt(e[i + 7].str)));
                          d->set_last_outcome(e[i + 8].str);
                        }
                        DeadPage next = at;
                        if (examined < count) {
                          next = DeadPage{at.shard + 1, 0};
                        } else {
                          next.offset += examined;
                        }
                        if (resp->dead_letters_size() >= want) {
                          resp->set_next_page_token(absl::StrCat(next.shard, ":", next.offset));
                          *step = nullptr;
                          return done(absl::OkStatus());
                        }
                        auto again = *step;
                        again(next);
                      });
        };
        auto first = *step;
        first(page);
      });
}

grpc::ServerUnaryReactor* NotificationServiceImpl::RedriveDeadLetter(
    grpc::CallbackServerContext* context, const v1::RedriveDeadLetterRequest* request,
    v1::RedriveDeadLetterResponse* response) {
  return pipeline_.Unary<v1::RedriveDeadLetterRequest, v1::RedriveDeadLetterResponse>(
      context, "RedriveDeadLetter", request, response,
      [this](const v1::RedriveDeadLetterRequest& r) {
        common::FieldViolations v;
        std::pair<std::string, std::string> p =
            absl::StrSplit(r.dead_letter_id(), absl::MaxSplits('/', 1));
        if (p.second.empty() || !sharding_.ShardOf("sub", p.first).ok()) {
          v.Add("dead_letter_id", "is not a dead letter id");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::RedriveDeadLetterRequest& r,
             v1::RedriveDeadLetterResponse*, Done done) {
        std::pair<std::string, std::string> p =
            absl::StrSplit(r.dead_letter_id(), absl::MaxSplits('/', 1));
        const int shard = *sharding_.ShardOf("sub", p.first);
        const std::string owner = call.caller.HasRole("operator") ? "" : call.caller.authority_id;
        redis_.Eval(
            RedriveScript(),
            {Keys::DeadLetters(shard), Keys::WebhookDue(shard),
             Keys::WebhookJob(shard, r.dead_letter_id())},
            {r.dead_letter_id(), absl::StrCat(absl::ToUnixMillis(clock_.Now())), owner},
            [done, id = r.dead_letter_id(),
             who = call.caller.authority_id](absl::StatusOr<RedisReply> reply) {
              if (!reply.ok()) return done(RedisStatus(reply.status()));
              if (reply->str != "ok") {
                return done(absl::NotFoundError("no such dead letter"));
              }
              common::Log::Info("dead letter redriven", {{"dead_letter_id", id}, {"by", who}});
              done(absl::OkStatus());
            });
      });
}

}  // namespace rogatory::notification
