#include "notification_event_handler.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "notification_keys.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/metrics.h"

namespace rogatory::notification {
namespace {

using common::v1::AuthorityRole;
using common::v1::Event;

// KEYS: seen, parties, evidence, request events, retrieval timers, fan-out
// outbox, catch-up list. ARGV: [1] dedupe retention ms, [2] event pb, [3] event id, [4] now
// ms, [5] evidence retention ms, [6] retrieval due ms (0: no timer), [7] instrument, [8]
// request id, [9] extra recipients "id@state,...", [10] 1 if the translator is told, [11]
// type, [12] catch-up action ('keep': the event is one a later party must receive; 'drop':
// the deadline ended, its events are no longer owed; '': neither), [13] deadline id, [14]
// catch-up limit, [15] key prefix, [16..] party record updates as field, value pairs.
// Returns {'duplicate'} | {'ok', recipient count, catch-up deliveries}.
//
// A party (issuing, executing, central or notified authority) the party record did not hold
// before this event has joined: before this event's own fan-out entry, it gets one entry per event
// of the catch-up list (with its "accepted" evidence and retrieval timer), so its inbox
// reads the earlier deadline events before this one, as every inbox reads events in the
// order they were received.
const common::LuaScript& ReceiveScript() {
  static const common::LuaScript* script = new common::LuaScript(common::ReceiverScript(R"lua(
local before = redis.call('HMGET', KEYS[2], 'iss', 'exe', 'cen', 'ntf')
for i = 16, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
local p = redis.call('HMGET', KEYS[2], 'iss', 'iss_st', 'exe', 'exe_st', 'cen', 'cen_st',
                     'tra', 'tra_st', 'req_st', 'inst', 'ntf', 'ntf_st')
if #ARGV >= 16 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
local to, seen = {}, {}
local function add(id, st)
  if id and id ~= '' and not seen[id] then
    seen[id] = true
    to[#to + 1] = id .. '@' .. (st or '')
  end
end
add(p[1], p[2])
add(p[3], p[4])
add(p[5], p[6])
add(p[11], p[12])
if ARGV[10] == '1' then add(p[7], p[8]) end
for r in string.gmatch(ARGV[9], '[^,]+') do
  local id, st = string.match(r, '^([^@]*)@?(.*)$')
  add(id, st)
end
local states = ',' .. (p[2] or '') .. ',' .. (p[9] or '') .. ',' .. (p[4] or '') .. ','
local now = tonumber(ARGV[4])
local due = tonumber(ARGV[6])
-- Catch-up of the parties that join with this event.
local joined, was = {}, {}
for _, id in ipairs(before) do if id then was[id] = true end end
for _, i in ipairs({1, 3, 5, 11}) do
  if p[i] and p[i] ~= '' and not was[p[i]] then
    was[p[i]] = true
    joined[#joined + 1] = {p[i], p[i] .. '@' .. (p[i + 1] or '')}
  end
end
local caught = 0
if #joined > 0 then
  local recipients = {}
  for _, j in ipairs(joined) do recipients[#recipients + 1] = j[2] end
  recipients = table.concat(recipients, ',')
  for _, item in ipairs(redis.call('LRANGE', KEYS[7], 0, -1)) do
    local eid, typ = string.match(item, '^[^|]*|([^|]*)|(.*)$')
    local evk = ARGV[15] .. 'ev:' .. (eid or '')
    local pb = eid and redis.call('HGET', evk, 'pb')
    if pb then
      for _, j in ipairs(joined) do
        redis.call('HSETNX', evk, '1|' .. j[1] .. '|', ARGV[4])
        if due > 0 then redis.call('ZADD', KEYS[5], 'NX', due, eid .. '|' .. j[1]) end
      end
      redis.call('XADD', KEYS[6], '*', 'ev', pb, 'to', recipients, 'acc', ARGV[4], 'kind', 'n',
                 'st', states, 'inst', p[10] or '', 'typ', typ)
      caught = caught + 1
    end
  end
end
redis.call('HSET', KEYS[3], 'pb', ARGV[2], 'rq', ARGV[8])
for _, r in ipairs(to) do
  local id = string.match(r, '^([^@]*)')
  redis.call('HSETNX', KEYS[3], '1|' .. id .. '|', ARGV[4])
  if due > 0 then
    redis.call('ZADD', KEYS[5], 'NX', ARGV[6], ARGV[3] .. '|' .. id)
  end
end
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('ZADD', KEYS[4], 'NX', now, ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[5])
if #to > 0 then
  redis.call('XADD', KEYS[6], '*', 'ev', ARGV[2], 'to', table.concat(to, ','), 'acc', ARGV[4],
             'kind', 'n', 'st', states, 'inst', ARGV[7], 'typ', ARGV[11])
end
if ARGV[12] == 'keep' then
  redis.call('RPUSH', KEYS[7], ARGV[13] .. '|' .. ARGV[3] .. '|' .. ARGV[11])
  redis.call('LTRIM', KEYS[7], -tonumber(ARGV[14]), -1)
  redis.call('PEXPIRE', KEYS[7], ARGV[5])
elseif ARGV[12] == 'drop' then
  local prefix = ARGV[13] .. '|'
  for _, item in ipairs(redis.call('LRANGE', KEYS[7], 0, -1)) do
    if string.sub(item, 1, #prefix) == prefix then redis.call('LREM', KEYS[7], 0, item) end
  end
end
return {'ok', #to, caught}
)lua"));
  return *script;
}

// Retention (REQUEST_ERASED): intake erased the request. The copies of its events kept as
// evidence payloads ("pb") go, and so do its pending retrieval timers (no re-announcement or
// escalation about an erased request). The evidence itself (stage, recipient authority,
// time) and the party record (authority ids) hold no personal data and stay, as e-CODEX
// keeps its evidences, until evidence-retention expires them. Inbox entries live in the
// authorities' shards and age out with inbox-retention-age. Nothing is fanned out.
// The catch-up list (references only) goes too: nothing of the request is owed any more.
// KEYS: seen, request events, retrieval timers, catch-up list. ARGV: [1] dedupe retention
// ms, [2] key prefix. Returns {'duplicate'} | {'erased', events}.
const common::LuaScript& EraseScript() {
  static const common::LuaScript* script =
      new common::LuaScript(absl::StrCat(common::kScriptRunsWhenFull, common::ReceiverScript(R"lua(
local n = 0
for _, eid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local evk = ARGV[2] .. 'ev:' .. eid
  redis.call('HDEL', evk, 'pb')
  for _, f in ipairs(redis.call('HKEYS', evk)) do
    local who = string.match(f, '^%d+|([^|]*)|')
    if who then redis.call('ZREM', KEYS[3], eid .. '|' .. who) end
  end
  n = n + 1
end
redis.call('DEL', KEYS[4])
return {'erased', n}
)lua")));
  return *script;
}

void AddParty(std::vector<std::string>& args, const char* id_field, const char* state_field,
              const common::v1::AuthorityRef& ref) {
  if (ref.authority_id().empty()) return;
  args.push_back(id_field);
  args.push_back(ref.authority_id());
  args.push_back(state_field);
  args.push_back(ref.state());
}

}  // namespace

const char* CatchUpActionOf(const Event& event) {
  if (!event.has_deadline() || event.deadline().deadline_id().empty()) return "";
  switch (event.type()) {
    case common::v1::EVENT_TYPE_DEADLINE_STARTED:
    case common::v1::EVENT_TYPE_DEADLINE_EXTENDED:
    case common::v1::EVENT_TYPE_DEADLINE_SUSPENDED:
    case common::v1::EVENT_TYPE_DEADLINE_RESUMED:
    case common::v1::EVENT_TYPE_DEADLINE_MISSED:
    case common::v1::EVENT_TYPE_DEADLINE_ESCALATED:
      return "keep";
    case common::v1::EVENT_TYPE_DEADLINE_MET:
    case common::v1::EVENT_TYPE_DEADLINE_CANCELLED:
      return "drop";
    default:  // reminders: the start and changes say all a joining party must know
      return "";
  }
}

bool IsTranslationJobEvent(common::v1::EventType type) {
  return type >= common::v1::EVENT_TYPE_TRANSLATION_JOB_QUEUED &&
         type <= common::v1::EVENT_TYPE_TRANSLATION_JOB_CANCELLED;
}

PartiesSeen PartiesOf(const Event& event) {
  PartiesSeen p;
  if (event.has_request()) {
    p.issuing = event.request().issuing_authority();
    p.executing = event.request().executing_authority();
    p.requested_state = event.request().requested_state();
  }
  if (event.has_routing_decided()) {
    if (p.executing.authority_id().empty()) {
      p.executing = event.routing_decided().competent_authority();
    }
    p.central = event.routing_decided().central_authority();
    p.notified = event.routing_decided().notified_authority();
  }
  // The actor, when an authority acted in a role, is a party in that role. This
  // is how the translator of a job is learned: job events name it as their
  // actor once it claimed the job (the job record itself lives in the routing
  // service).
  const auto& actor = event.actor();
  if (!actor.authority().authority_id().empty()) {
    switch (actor.role()) {
      case common::v1::AUTHORITY_ROLE_ISSUING:
        if (p.issuing.authority_id().empty()) p.issuing = actor.authority();
        break;
      case common::v1::AUTHORITY_ROLE_EXECUTING:
        if (p.executing.authority_id().empty()) p.executing = actor.authority();
        break;
      case common::v1::AUTHORITY_ROLE_CENTRAL:
        if (p.central.authority_id().empty()) p.central = actor.authority();
        break;
      case common::v1::AUTHORITY_ROLE_TRANSLATOR:
        if (IsTranslationJobEvent(event.type())) p.translator = actor.authority();
        break;
      default:
        break;
    }
  }
  return p;
}

NotificationEventHandler::NotificationEventHandler(common::RedisClient& redis,
                                                   const common::Clock& clock,
                                                   common::Sharding sharding,
                                                   NotificationSettings settings,
                                                   NotificationMetrics& metrics)
    : redis_(redis), clock_(clock), sharding_(sharding), settings_(settings), metrics_(metrics) {}

void NotificationEventHandler::Handle(const Event& event, const common::Dedupe& dedupe,
                                      std::function<void(absl::StatusOr<Outcome>)> done) {
  HandleWithExtras(event, dedupe, {}, std::move(done));
}

void NotificationEventHandler::HandleWithExtras(
    const Event& event, const common::Dedupe& dedupe,
    const std::vector<common::v1::AuthorityRef>& extra_recipients,
    std::function<void(absl::StatusOr<Outcome>)> done) {
  auto shard = sharding_.ShardOf("rq", event.request_id());
  if (!shard.ok()) return done(shard.status());
  if (event.type() == common::v1::EVENT_TYPE_REQUEST_ERASED) {
    return redis_.Eval(EraseScript(),
                       {dedupe.seen_key, Keys::RequestEvents(*shard, event.request_id()),
                        Keys::RetrievalDue(*shard), Keys::CatchUp(*shard, event.request_id())},
                       {dedupe.retention_ms, Keys::P(*shard)},
                       [done = std::move(done)](absl::StatusOr<common::RedisReply> reply) {
                         done(common::ReceiverOutcome(reply));
                       });
  }
  const absl::Time now = clock_.Now();
  const int64_t now_ms = absl::ToUnixMillis(now);
  const int64_t due_ms = settings_.retrieval_timeout > absl::ZeroDuration()
                             ? now_ms + absl::ToInt64Milliseconds(settings_.retrieval_timeout)
                             : 0;
  std::vector<std::string> extras;
  for (const auto& r : extra_recipients) {
    if (!r.authority_id().empty()) extras.push_back(absl::StrCat(r.authority_id(), "@", r.state()));
  }
  const PartiesSeen parties = PartiesOf(event);
  std::vector<std::string> args = {
      dedupe.retention_ms,
      event.SerializeAsString(),
      event.event_id(),
      absl::StrCat(now_ms),
      absl::StrCat(absl::ToInt64Milliseconds(settings_.evidence_retention)),
      absl::StrCat(due_ms),
      absl::StrCat(static_cast<int>(event.instrument())),
      event.request_id(),
      absl::StrJoin(extras, ","),
      IsTranslationJobEvent(event.type()) ? "1" : "0",
      absl::StrCat(static_cast<int>(event.type())),
      CatchUpActionOf(event),
      event.has_deadline() ? event.deadline().deadline_id() : "",
      absl::StrCat(kCatchUpLimit),
      Keys::P(*shard)};
  AddParty(args, "iss", "iss_st", parties.issuing);
  AddParty(args, "exe", "exe_st", parties.executing);
  AddParty(args, "cen", "cen_st", parties.central);
  AddParty(args, "tra", "tra_st", parties.translator);
  AddParty(args, "ntf", "ntf_st", parties.notified);
  if (!parties.requested_state.empty()) {
    args.push_back("req_st");
    args.push_back(parties.requested_state);
  }
  if (event.instrument() != common::v1::INSTRUMENT_UNSPECIFIED) {
    args.push_back("inst");
    args.push_back(absl::StrCat(static_cast<int>(event.instrument())));
  }
  redis_.Eval(
      ReceiveScript(),
      {dedupe.seen_key, Keys::Parties(*shard, event.request_id()),
       Keys::Evidence(*shard, event.event_id()), Keys::RequestEvents(*shard, event.request_id()),
       Keys::RetrievalDue(*shard), Keys::Fanout(*shard), Keys::CatchUp(*shard, event.request_id())},
      std::move(args),
      [this, done = std::move(done), source = event.source(), shard = *shard,
       wakeups = fanout_wakeups_](absl::StatusOr<common::RedisReply> reply) {
        auto outcome = common::ReceiverOutcome(reply);
        if (outcome.ok() && *outcome == Outcome::kHandled) {
          if (wakeups != nullptr) wakeups->Wake(shard);
          metrics_.EventReceived(common::EventSourceLabel(source));
          if (reply->elements.size() > 1) {
            metrics_.FanOut(static_cast<int>(reply->elements[1].integer));
          }
          if (reply->elements.size() > 2 && reply->elements[2].integer > 0) {
            common::Log::Info("parties joined a request and were sent its running deadlines",
                              {{"events", reply->elements[2].integer}});
          }
        }
        done(outcome);
      });
}

}  // namespace rogatory::notification
