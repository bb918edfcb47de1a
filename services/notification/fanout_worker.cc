#include "fanout_worker.h"

#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "inbox.h"
#include "notification_keys.h"
#include "rogatory/common/audit_log.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/v1/events.pb.h"

namespace rogatory::notification {
namespace {

using common::LuaScript;
using common::RedisReply;

constexpr char kGroup[] = "fanout";
constexpr int kBatch = 50;
// A fan-out entry read by a replica that has not acknowledged it for this long
// is taken over.
constexpr int64_t kClaimIdleMs = 30000;

// KEYS: inbox, floor, marker, owner's subscriptions, webhook queue.
// ARGV: [1] event pb, [2] accept ms, [3] kind (n|r|x), [4] now ms, [5] min id
// "<ms>-0",
//       [6] max length, [7] marker ttl ms, [8] instrument, [9] type, [10]
//       states ",DE,FR,", [11] key prefix, [12] notification id, [13] request
//       id, [14] recipient id, [15] recipient state, [16] event id.
// Returns {'duplicate'} | {'ok', entry id, webhook jobs}.
const LuaScript &InboxScript() {
  static const LuaScript *script = new LuaScript(absl::StrCat(kTrimLua, R"lua(
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[7]) then return {'duplicate'} end
trim(KEYS[1], KEYS[2], ARGV[5], tonumber(ARGV[6]) - 1)
local fields = {'ev', ARGV[1], 'acc', ARGV[2], 'kind', ARGV[3], 'rq', ARGV[13], 'eid', ARGV[16],
                'to', ARGV[14], 'tost', ARGV[15], 'st', ARGV[10]}
-- Entry ids follow the service clock (so age trimming and ids agree); if the clock is
-- behind the stream's last id, Redis picks the next id itself.
local id = redis.pcall('XADD', KEYS[1], ARGV[4] .. '-*', unpack(fields))
if type(id) == 'table' and id.err then id = redis.call('XADD', KEYS[1], '*', unpack(fields)) end
local function has(list, v)
  return list == nil or list == '' or string.find(list, ',' .. v .. ',', 1, true) ~= nil
end
local function anystate(list, states)
  if list == nil or list == '' then return true end
  for st in string.gmatch(states, '[^,]+') do
    if string.find(list, ',' .. st .. ',', 1, true) then return true end
  end
  return false
end
local jobs = 0
if ARGV[3] ~= 'r' then
  for _, sid in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local s = redis.call('HMGET', ARGV[11] .. 'sub:' .. sid, 'fi', 'ft', 'fs', 'uri')
    if s[4] and has(s[1], ARGV[8]) and has(s[2], ARGV[9]) and anystate(s[3], ARGV[10]) then
      local member = sid .. '/' .. ARGV[12]
      local jk = ARGV[11] .. 'whjob:' .. member
      if redis.call('EXISTS', jk) == 0 then
        redis.call('HSET', jk, 'sub', sid, 'ev', ARGV[1], 'att', 0, 'acc', ARGV[2],
                   'rq', ARGV[13], 'eid', ARGV[16], 'to', ARGV[14], 'tost', ARGV[15])
        redis.call('ZADD', KEYS[5], ARGV[4], member)
        jobs = jobs + 1
      end
    end
  end
end
return {'ok', id, jobs}
)lua"));
  return *script;
}

// Retrieval timers of one shard. KEYS: timers, fan-out outbox. ARGV: now ms,
// limit, escalation ms, key prefix. Returns the number of timers handled.
const LuaScript &TimersScript() {
  static const LuaScript *script = new LuaScript(R"lua(
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(items) do
  local eid, who = string.match(m, '^([^|]*)|(.*)$')
  local evk = ARGV[4] .. 'ev:' .. eid
  local h = redis.call('HMGET', evk, '3|' .. who .. '|', '4|' .. who .. '|', '5|' .. who .. '|',
                       'pb', 'rq')
  if h[1] or not h[4] then
    redis.call('ZREM', KEYS[1], m)
  elseif not h[2] then
    redis.call('HSET', evk, '4|' .. who .. '|', ARGV[1])
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), m)
    redis.call('XADD', KEYS[2], '*', 'ev', h[4], 'to', who .. '@', 'acc', ARGV[1], 'kind', 'r',
               'st', '', 'inst', '', 'typ', '')
  else
    redis.call('ZREM', KEYS[1], m)
    if not h[3] then
      redis.call('HSET', evk, '5|' .. who .. '|', ARGV[1])
      local p = redis.call('HMGET', ARGV[4] .. 'parties:' .. h[5], 'cen', 'cen_st', 'iss',
                           'iss_st', 'exe', 'exe_st')
      local target = nil
      for i = 1, 5, 2 do
        if not target and p[i] and p[i] ~= '' and p[i] ~= who then
          target = p[i] .. '@' .. (p[i + 1] or '')
        end
      end
      if target then
        redis.call('XADD', KEYS[2], '*', 'ev', h[4], 'to', target, 'acc', ARGV[1], 'kind', 'x',
                   'about', who, 'st', '', 'inst', '', 'typ', '92')
      end
    end
  end
end
return #items
)lua");
  return *script;
}

std::map<std::string, std::string> Fields(const RedisReply &list) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < list.elements.size(); i += 2) {
    out[list.elements[i].str] = list.elements[i + 1].str;
  }
  return out;
}

}  // namespace

std::string EscalationEventId(const std::string &event_id, const std::string &recipient) {
  return absl::StrCat(event_id, ":not-retrieved:", recipient);
}

FanoutWorker::FanoutWorker(common::RedisClient &redis, const common::Clock &clock,
                           common::Sharding sharding, NotificationSettings settings,
                           NotificationMetrics &metrics)
    : redis_(redis),
      clock_(clock),
      sharding_(sharding),
      settings_(settings),
      metrics_(metrics),
      consumer_(common::NewUlid(clock.Now())),
      group_ready_(sharding.shard_count(), false),
      retry_own_(sharding.shard_count(), false) {}

FanoutWorker::~FanoutWorker() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void FanoutWorker::Start() {
  thread_ = std::thread([this] {
    absl::Time next_gauges = absl::InfinitePast();
    while (true) {
      const int delivered = RunOnce(/*all=*/false);
      if (absl::Now() >= next_gauges) {  // pacing of upkeep, not logic: real time is right
        UpdateGauges();
        next_gauges = absl::Now() + absl::Seconds(5);
      }
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      if (delivered == 0) {
        mu_.AwaitWithTimeout(absl::Condition(&stop_), settings_.poll_interval);
        if (stop_) return;
      }
    }
  });
}

int FanoutWorker::RunOnce(bool all) {
  // Pacing of upkeep, not logic: real time is right here. Timers still fire by
  // the service clock; they are only looked at once a second.
  bool slow = all;
  if (!slow && absl::Now() >= next_slow_work_) {
    slow = true;
    next_slow_work_ = absl::Now() + absl::Seconds(1);
  }
  int total = 0;
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
    total += DeliverShard(shard, slow);
    if (slow) TimersShard(shard);
  }
  return total;
}

int FanoutWorker::DeliverShard(int shard, bool claim_abandoned) {
  const std::string stream = Keys::Fanout(shard);
  if (!group_ready_[shard]) {
    auto r = common::RunRedisCommand(redis_, {"XGROUP", "CREATE", stream, kGroup, "0", "MKSTREAM"});
    if (!r.ok() && r.status().message().find("BUSYGROUP") == std::string::npos) return 0;
    group_ready_[shard] = true;
  }
  std::vector<const RedisReply *> entries;
  // After a failed delivery, this replica's own unacknowledged entries first
  // (in order).
  absl::StatusOr<RedisReply> own;
  if (retry_own_[shard]) {
    own = common::RunRedisCommand(redis_, {"XREADGROUP", "GROUP", kGroup, consumer_, "COUNT",
                                           absl::StrCat(kBatch), "STREAMS", stream, "0"});
    if (!own.ok()) return 0;
    if (!own->is_nil() && !own->elements.empty() && own->elements[0].elements.size() >= 2) {
      for (const auto &e : own->elements[0].elements[1].elements) entries.push_back(&e);
    }
    if (entries.empty()) retry_own_[shard] = false;
  }
  // Entries another (dead) replica read but never acknowledged, then new ones.
  absl::StatusOr<RedisReply> claimed = RedisReply{};
  if (entries.empty() && claim_abandoned)
    claimed = common::RunRedisCommand(
        redis_, {"XAUTOCLAIM", stream, kGroup, consumer_, absl::StrCat(kClaimIdleMs), "0-0",
                 "COUNT", absl::StrCat(kBatch)});
  if (!claimed.ok()) {
    if (claimed.status().message().find("NOGROUP") != std::string::npos)
      group_ready_[shard] = false;
    return 0;
  }
  if (claimed->elements.size() >= 2) {
    for (const auto &e : claimed->elements[1].elements) entries.push_back(&e);
  }
  absl::StatusOr<RedisReply> fresh;
  if (entries.empty()) {
    fresh = common::RunRedisCommand(redis_, {"XREADGROUP", "GROUP", kGroup, consumer_, "COUNT",
                                             absl::StrCat(kBatch), "STREAMS", stream, ">"});
    if (!fresh.ok()) return 0;
    if (!fresh->is_nil() && !fresh->elements.empty() && fresh->elements[0].elements.size() >= 2) {
      for (const auto &e : fresh->elements[0].elements[1].elements) entries.push_back(&e);
    }
  }
  const absl::Time now = clock_.Now();
  const int64_t now_ms = absl::ToUnixMillis(now);
  const std::string min_id = absl::StrCat(
      std::max<int64_t>(0, now_ms - absl::ToInt64Milliseconds(settings_.inbox_retention_age)),
      "-0");
  int delivered = 0;
  for (const RedisReply *entry : entries) {
    if (entry->elements.size() < 2 || entry->elements[1].type != RedisReply::Type::kArray) {
      // Deleted meanwhile (handled before): acknowledge it, or it stays pending and
      // comes back with every re-read of this consumer's own entries.
      if (!entry->elements.empty()) {
        common::RunRedisCommand(redis_, {"XACK", stream, kGroup, entry->elements[0].str})
            .IgnoreError();
      }
      continue;
    }
    const std::string entry_id = entry->elements[0].str;
    auto f = Fields(entry->elements[1]);
    const std::string &kind = f["kind"];
    common::v1::Event event;
    if (!event.ParseFromString(f["ev"])) {
      common::Log::Error("unreadable fan-out entry dropped", {{"shard", shard}});
      common::RunRedisCommand(redis_, {"XACK", stream, kGroup, entry_id}).IgnoreError();
      continue;
    }
    std::string notification_id = event.event_id();
    const std::string original_event_id = event.event_id();
    if (kind == "r") {
      notification_id = absl::StrCat(event.event_id(), ":r");
    } else if (kind == "x") {
      // An escalation notice: a new event saying who did not retrieve which
      // event.
      common::v1::Event notice;
      notice.set_event_id(EscalationEventId(event.event_id(), f["about"]));
      notice.set_request_id(event.request_id());
      notice.set_type(common::v1::EVENT_TYPE_NOTIFICATION_NOT_RETRIEVED);
      *notice.mutable_occur_time() =
          google::protobuf::util::TimeUtil::MillisecondsToTimestamp(now_ms);
      notice.mutable_actor()->set_service("rogatory-notification");
      notice.set_trace_id(event.trace_id());
      notice.set_instrument(event.instrument());
      notice.set_source("notification");
      *notice.mutable_request() = event.request();
      notice.mutable_notification()->set_delivered_event_id(event.event_id());
      notice.mutable_notification()->mutable_recipient()->set_authority_id(f["about"]);
      event = std::move(notice);
      notification_id = event.event_id();
    }
    const std::string pb = kind == "x" ? event.SerializeAsString() : f["ev"];
    bool all_ok = true;
    for (absl::string_view r : absl::StrSplit(f["to"], ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> who = absl::StrSplit(r, absl::MaxSplits('@', 1));
      const int ashard = sharding_.ShardFor(who.first);
      const std::string prefix = Keys::P(ashard);
      auto reply = common::RunRedisScript(
          redis_, InboxScript(),
          {Keys::Inbox(ashard, who.first), Keys::InboxFloor(ashard, who.first),
           Keys::InboxMarker(ashard, who.first, notification_id),
           Keys::OwnerSubscriptions(ashard, who.first), Keys::WebhookDue(ashard)},
          {pb, f["acc"], kind, absl::StrCat(now_ms), min_id,
           absl::StrCat(settings_.inbox_max_length),
           absl::StrCat(absl::ToInt64Milliseconds(settings_.dedupe_retention)),
           kind == "x" ? absl::StrCat(static_cast<int>(event.instrument())) : f["inst"],
           kind == "x" ? "92" : f["typ"], f["st"], prefix, notification_id, event.request_id(),
           who.first, who.second, kind == "x" ? event.event_id() : original_event_id});
      if (!reply.ok()) {
        all_ok = false;
        common::Log::Warn("inbox delivery failed; will retry",
                          {{"event_id", original_event_id}, {"error", reply.status().ToString()}});
        break;
      }
      if (auditor_ != nullptr) {
        // A disclosure of the request to the recipient authority, logged before the entry
        // is acknowledged (a retry re-delivers idempotently and logs again).
        absl::Status logged = common::RecordAndWait(
            *auditor_, common::ServiceAuditRecord(
                           "rogatory-notification", "DeliverToInbox", event.request_id(),
                           common::AccessKind::kDisclose,
                           absl::StrCat("inbox:", who.first, ":", notification_id),
                           event.trace_id()));
        if (!logged.ok()) {
          all_ok = false;
          common::Log::Warn("inbox delivery not audited; will retry",
                            {{"event_id", original_event_id}});
          break;
        }
      }
    }
    if (!all_ok) {
      retry_own_[shard] = true;
      break;  // keep order: the rest of the shard waits for the retry
    }
    common::RunRedisCommand(redis_, {"XACK", stream, kGroup, entry_id}).IgnoreError();
    common::RunRedisCommand(redis_, {"XDEL", stream, entry_id}).IgnoreError();
    ++delivered;
  }
  return delivered;
}

void FanoutWorker::TimersShard(int shard) {
  if (settings_.retrieval_timeout <= absl::ZeroDuration()) return;
  auto r = common::RunRedisScript(
      redis_, TimersScript(), {Keys::RetrievalDue(shard), Keys::Fanout(shard)},
      {absl::StrCat(absl::ToUnixMillis(clock_.Now())), "100",
       absl::StrCat(absl::ToInt64Milliseconds(settings_.escalation_timeout)), Keys::P(shard)});
  if (!r.ok()) {
    common::Log::Warn("retrieval timers failed; will retry", {{"shard", shard}});
  }
}

void FanoutWorker::UpdateGauges() {
  int64_t dead = 0, pending = 0;
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
    auto d = common::RunRedisCommand(redis_, {"ZCARD", Keys::DeadLetters(shard)});
    auto p = common::RunRedisCommand(redis_, {"ZCARD", Keys::RetrievalDue(shard)});
    if (!d.ok() || !p.ok()) return;
    dead += d->integer;
    pending += p->integer;
  }
  metrics_.dead_letters().Set(static_cast<double>(dead));
  metrics_.unretrieved().Set(static_cast<double>(pending));
}

}  // namespace rogatory::notification
