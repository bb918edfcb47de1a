#include "notification_event_handler.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "notification_keys.h"
#include "rogatory/common/logging.h"

namespace rogatory::notification {
namespace {

using common::v1::AuthorityRole;
using common::v1::Event;

// KEYS: seen, parties, evidence, request events, retrieval timers, fan-out
// outbox. ARGV: [1] dedupe retention ms, [2] event pb, [3] event id, [4] now
// ms, [5] evidence
//       retention ms, [6] retrieval due ms (0: no timer), [7] instrument, [8]
//       request id, [9] extra recipients "id@state,...", [10] 1 if the
//       translator is told, [11] type, [12..] party record updates as field,
//       value pairs.
// Returns {'duplicate'} | {'ok', recipient count}.
const common::LuaScript &ReceiveScript() {
  static const common::LuaScript *script = new common::LuaScript(common::ReceiverScript(R"lua(
for i = 12, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
local p = redis.call('HMGET', KEYS[2], 'iss', 'iss_st', 'exe', 'exe_st', 'cen', 'cen_st',
                     'tra', 'tra_st', 'req_st')
if #ARGV >= 12 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
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
if ARGV[10] == '1' then add(p[7], p[8]) end
for r in string.gmatch(ARGV[9], '[^,]+') do
  local id, st = string.match(r, '^([^@]*)@?(.*)$')
  add(id, st)
end
local states = ',' .. (p[2] or '') .. ',' .. (p[9] or '') .. ',' .. (p[4] or '') .. ','
redis.call('HSET', KEYS[3], 'pb', ARGV[2], 'rq', ARGV[8])
local now = tonumber(ARGV[4])
for _, r in ipairs(to) do
  local id = string.match(r, '^([^@]*)')
  redis.call('HSETNX', KEYS[3], '1|' .. id .. '|', ARGV[4])
  if tonumber(ARGV[6]) > 0 then
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
return {'ok', #to}
)lua"));
  return *script;
}

// Retention (REQUEST_ERASED): intake erased the request. The copies of its events kept as
// evidence payloads ("pb") go, and so do its pending retrieval timers (no re-announcement or
// escalation about an erased request). The evidence itself (stage, recipient authority,
// time) and the party record (authority ids) hold no personal data and stay, as e-CODEX
// keeps its evidences, until evidence-retention expires them. Inbox entries live in the
// authorities' shards and age out with inbox-retention-age. Nothing is fanned out.
// KEYS: seen, request events, retrieval timers. ARGV: [1] dedupe retention ms, [2] key
// prefix. Returns {'duplicate'} | {'erased', events}.
const common::LuaScript &EraseScript() {
  static const common::LuaScript *script = new common::LuaScript(common::ReceiverScript(R"lua(
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
return {'erased', n}
)lua"));
  return *script;
}

void AddParty(std::vector<std::string> &args, const char *id_field, const char *state_field,
              const common::v1::AuthorityRef &ref) {
  if (ref.authority_id().empty()) return;
  args.push_back(id_field);
  args.push_back(ref.authority_id());
  args.push_back(state_field);
  args.push_back(ref.state());
}

}  // namespace

bool IsTranslationJobEvent(common::v1::EventType type) {
  return type >= common::v1::EVENT_TYPE_TRANSLATION_JOB_QUEUED &&
         type <= common::v1::EVENT_TYPE_TRANSLATION_JOB_CANCELLED;
}

PartiesSeen PartiesOf(const Event &event) {
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
  }
  // The actor, when an authority acted in a role, is a party in that role. This
  // is how the translator of a job is learned: job events name it as their
  // actor once it claimed the job (the job record itself lives in the routing
  // service).
  const auto &actor = event.actor();
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

NotificationEventHandler::NotificationEventHandler(common::RedisClient &redis,
                                                   const common::Clock &clock,
                                                   common::Sharding sharding,
                                                   NotificationSettings settings,
                                                   NotificationMetrics &metrics)
    : redis_(redis), clock_(clock), sharding_(sharding), settings_(settings), metrics_(metrics) {}

void NotificationEventHandler::Handle(const Event &event, const common::Dedupe &dedupe,
                                      std::function<void(absl::StatusOr<Outcome>)> done) {
  HandleWithExtras(event, dedupe, {}, std::move(done));
}

void NotificationEventHandler::HandleWithExtras(
    const Event &event, const common::Dedupe &dedupe,
    const std::vector<common::v1::AuthorityRef> &extra_recipients,
    std::function<void(absl::StatusOr<Outcome>)> done) {
  auto shard = sharding_.ShardOf("rq", event.request_id());
  if (!shard.ok()) return done(shard.status());
  if (event.type() == common::v1::EVENT_TYPE_REQUEST_ERASED) {
    return redis_.Eval(EraseScript(),
                       {dedupe.seen_key, Keys::RequestEvents(*shard, event.request_id()),
                        Keys::RetrievalDue(*shard)},
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
  for (const auto &r : extra_recipients) {
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
      absl::StrCat(static_cast<int>(event.type()))};
  AddParty(args, "iss", "iss_st", parties.issuing);
  AddParty(args, "exe", "exe_st", parties.executing);
  AddParty(args, "cen", "cen_st", parties.central);
  AddParty(args, "tra", "tra_st", parties.translator);
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
       Keys::RetrievalDue(*shard), Keys::Fanout(*shard)},
      std::move(args),
      [this, done = std::move(done), source = event.source(), shard = *shard,
       wakeups = fanout_wakeups_](absl::StatusOr<common::RedisReply> reply) {
        auto outcome = common::ReceiverOutcome(reply);
        if (outcome.ok() && *outcome == Outcome::kHandled) {
          if (wakeups != nullptr) wakeups->Wake(shard);
          metrics_.EventReceived(source.empty() ? "unknown" : source);
          if (reply->elements.size() > 1) {
            metrics_.FanOut(static_cast<int>(reply->elements[1].integer));
          }
        }
        done(outcome);
      });
}

}  // namespace rogatory::notification
