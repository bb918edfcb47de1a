#include "fanout_worker.h"

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "batch_outcomes.h"
#include "google/protobuf/util/time_util.h"
#include "inbox.h"
#include "notification_keys.h"
#include "notification_lua_scripts.h"
#include "rogatory/common/audit_log.h"
#include "rogatory/common/event_builder.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/v1/events.pb.h"

namespace rogatory::notification {
namespace {

using common::LuaScript;
using common::RedisReply;

constexpr int kBatch = 50;
// A fan-out entry read by a replica that has not acknowledged it for this long
// is taken over.
constexpr int64_t kClaimIdleMs = 30000;

// KEYS: inbox, floor, marker, owner's subscriptions, webhook queue, and optionally the
// marker of the previous delivery to the same inbox in the batch (order: this one is
// refused until that one is in).
// ARGV: [1] event pb, [2] accept ms, [3] kind (n|r|x), [4] now ms, [5] min id
// "<ms>-0",
//       [6] max length, [7] marker ttl ms, [8] instrument, [9] type, [10]
//       states ",DE,FR,", [11] key prefix, [12] notification id, [13] request
//       id, [14] recipient id, [15] recipient state, [16] event id.
// Returns {'blocked'} | {'duplicate'} | {'ok', entry id, webhook jobs}.
const LuaScript& InboxScript() {
  static const LuaScript* script =
      new LuaScript(absl::StrCat(common::kScriptRefusedWhenFull, kTrimLua, R"lua(
if KEYS[6] and redis.call('EXISTS', KEYS[6]) == 0 then return {'blocked'} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'duplicate'} end
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
-- The marker last: a script failing before it (a Redis script is not rolled back) must
-- leave no marker that would make its retry a "duplicate".
redis.call('SET', KEYS[3], '1', 'PX', ARGV[7])
return {'ok', id, jobs}
)lua"));
  return *script;
}

}  // namespace

std::string EscalationEventId(const std::string& event_id, const std::string& recipient) {
  return absl::StrCat(event_id, ":not-retrieved:", recipient);
}

FanoutWorker::FanoutWorker(NotificationStore& store, common::RedisClient& redis,
                           const common::Clock& clock, common::Sharding sharding,
                           NotificationSettings settings, NotificationMetrics& metrics)
    : store_(store),
      redis_(redis),
      clock_(clock),
      sharding_(sharding),
      settings_(settings),
      metrics_(metrics),
      wakeups_(std::make_shared<FanoutWakeups>()),
      unacked_(std::make_shared<ShardFlags>(sharding.shard_count())),
      consumer_(common::NewUlid(clock.Now())),
      group_ready_(sharding.shard_count(), false),
      retry_own_(sharding.shard_count(), false) {}

FanoutWorker::~FanoutWorker() {
  wakeups_->Stop();
  if (thread_.joinable()) thread_.join();
}

void FanoutWorker::Start() {
  thread_ = std::thread([this] {
    // Pacing of upkeep and polling: the clock's monotonic reading.
    common::MonotonicTime next_gauges = common::MonotonicTime::InfinitePast();
    common::MonotonicTime next_poll = common::MonotonicTime::InfinitePast();
    std::vector<int> busy;  // shards that delivered in the last pass: they may have more
    while (!wakeups_->stopped()) {
      std::vector<int> shards;
      if (clock_.MonotonicNow() >= next_poll) {
        // Every shard: entries other replicas' handlers wrote, and retries.
        next_poll = clock_.MonotonicNow() + settings_.poll_interval;
        wakeups_->Take();
        for (int shard = 0; shard < sharding_.shard_count(); ++shard) shards.push_back(shard);
      } else {
        shards = wakeups_->Take();
        for (int shard : busy) {
          if (std::find(shards.begin(), shards.end(), shard) == shards.end()) {
            shards.push_back(shard);
          }
        }
      }
      busy.clear();
      Pass(shards, /*all=*/false, &busy);
      if (clock_.MonotonicNow() >= next_gauges) {
        UpdateGauges();
        next_gauges = clock_.MonotonicNow() + absl::Seconds(5);
      }
      if (busy.empty()) {
        const absl::Duration wait = next_poll - clock_.MonotonicNow();
        if (wait > absl::ZeroDuration()) {
          for (int shard : wakeups_->Wait(wait)) busy.push_back(shard);
        }
      }
    }
  });
}

int FanoutWorker::RunOnce(bool all) {
  std::vector<int> shards;
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) shards.push_back(shard);
  std::vector<int> busy;
  return Pass(shards, all, &busy);
}

int FanoutWorker::Pass(const std::vector<int>& shards, bool all, std::vector<int>* busy) {
  // Pacing of upkeep (the clock's monotonic reading): timers fire by the service clock's
  // wall time; they are only looked at once a second.
  bool slow = all;
  if (!slow && clock_.MonotonicNow() >= next_slow_work_) {
    slow = true;
    next_slow_work_ = clock_.MonotonicNow() + absl::Seconds(1);
  }
  const int total = DeliverShards(shards, slow, busy);
  if (slow) Timers();
  return total;
}

// Three phases, each with every shard's round trip in flight at once (with appendfsync
// always each write round trip costs an fsync, so the phases, not the shards, set the
// pace): read each shard's batch; deliver and audit every entry; acknowledge each shard's
// delivered prefix.
int FanoutWorker::DeliverShards(const std::vector<int>& shards, bool claim_abandoned,
                                std::vector<int>* busy) {
  {
    std::vector<int> preparing;
    for (int shard : shards) {
      if (!group_ready_[shard]) preparing.push_back(shard);
    }
    auto prepared = std::make_shared<BatchOutcomes<bool>>(preparing.size());
    for (size_t i = 0; i < preparing.size(); ++i) {
      prepared->Started();
      store_.PrepareFanout(preparing[i],
                           [prepared, i](absl::StatusOr<bool> r) { prepared->Finished(i, r); });
    }
    const auto results = prepared->Wait();
    for (size_t i = 0; i < preparing.size(); ++i) {
      if (results[i].ok()) group_ready_[preparing[i]] = true;
    }
  }

  // Phase 1: each shard's batch. After a failed delivery, this replica's own
  // unacknowledged entries first (in order); then entries another (dead) replica read but
  // never acknowledged; then new ones.
  std::vector<int> ready;
  for (int shard : shards) {
    if (unacked_->Take(shard)) retry_own_[shard] = true;
    if (group_ready_[shard]) ready.push_back(shard);
  }
  auto reads = std::make_shared<BatchOutcomes<NotificationStore::FanoutBatch>>(ready.size());
  for (size_t i = 0; i < ready.size(); ++i) {
    const int shard = ready[i];
    reads->Started();
    store_.ReadFanout(
        {shard, consumer_, kBatch, retry_own_[shard] == true, claim_abandoned ? kClaimIdleMs : 0},
        [reads, i](absl::StatusOr<NotificationStore::FanoutBatch> batch) {
          reads->Finished(i, std::move(batch));
        });
  }
  const std::vector<absl::StatusOr<NotificationStore::FanoutBatch>> batches = reads->Wait();

  const absl::Time now = clock_.Now();
  const int64_t now_ms = absl::ToUnixMillis(now);
  const std::string min_id = absl::StrCat(
      std::max<int64_t>(0, now_ms - absl::ToInt64Milliseconds(settings_.inbox_retention_age)),
      "-0");

  // Plan: each entry's deliveries, in order.
  struct Delivery {
    std::vector<std::string> keys;
    std::vector<std::string> args;
    std::string inbox;
    common::AuditRecord record;
  };
  struct Planned {
    std::string id;
    std::string event_id;         // for logs; empty when there is nothing to deliver
    size_t first = 0, count = 0;  // its deliveries
  };
  std::vector<std::vector<Planned>> planned(ready.size());
  std::vector<Delivery> deliveries;
  for (size_t b = 0; b < ready.size(); ++b) {
    const int shard = ready[b];
    const absl::StatusOr<NotificationStore::FanoutBatch>& read = batches[b];
    if (!read.ok()) {
      if (absl::IsFailedPrecondition(read.status())) group_ready_[shard] = false;
      continue;
    }
    if (read->own_drained) retry_own_[shard] = false;  // none of its own left
    // Per inbox, the marker of the batch's latest delivery to it (the next one waits for it).
    std::map<std::string, std::string> last_marker;
    for (const NotificationStore::FanoutEntry& entry : read->entries) {
      Planned p;
      p.id = entry.id;
      p.first = deliveries.size();
      if (entry.gone) {
        // Deleted meanwhile (handled before), or unreadable: acknowledge it, or it stays
        // pending and comes back with every re-read of this consumer's own entries.
        planned[b].push_back(std::move(p));
        continue;
      }
      std::map<std::string, std::string> f = entry.fields;
      const std::string& kind = f["kind"];
      common::v1::Event event;
      if (!event.ParseFromString(f["ev"])) {
        common::Log::Error("unreadable fan-out entry dropped", {{"shard", shard}});
        planned[b].push_back(std::move(p));
        continue;
      }
      std::string notification_id = event.event_id();
      const std::string original_event_id = event.event_id();
      p.event_id = original_event_id;
      if (kind == "r") {
        notification_id = absl::StrCat(event.event_id(), ":r");
      } else if (kind == "x") {
        // An escalation notice: a new event saying who did not retrieve which
        // event.
        static const auto* events = new common::EventBuilder("notification");
        common::v1::Event notice = events->New(
            {event.request_id(), event.trace_id(), event.instrument(), &event.request()},
            {common::v1::EVENT_TYPE_NOTIFICATION_NOT_RETRIEVED, absl::FromUnixMillis(now_ms),
             EscalationEventId(event.event_id(), f["about"])});
        notice.mutable_actor()->set_service("rogatory-notification");
        notice.mutable_notification()->set_delivered_event_id(event.event_id());
        notice.mutable_notification()->mutable_recipient()->set_authority_id(f["about"]);
        event = std::move(notice);
        notification_id = event.event_id();
      }
      const std::string pb = kind == "x" ? event.SerializeAsString() : f["ev"];
      for (absl::string_view r : absl::StrSplit(f["to"], ',', absl::SkipEmpty())) {
        std::pair<std::string, std::string> who = absl::StrSplit(r, absl::MaxSplits('@', 1));
        const int ashard = sharding_.ShardFor(who.first);
        Delivery d;
        d.inbox = Keys::Inbox(ashard, who.first);
        std::string marker = Keys::InboxMarker(ashard, who.first, notification_id);
        d.keys = {d.inbox, Keys::InboxFloor(ashard, who.first), marker,
                  Keys::OwnerSubscriptions(ashard, who.first), Keys::WebhookDue(ashard)};
        auto previous = last_marker.find(d.inbox);
        if (previous != last_marker.end()) {
          d.keys.push_back(previous->second);
          previous->second = std::move(marker);
        } else {
          last_marker.emplace(d.inbox, std::move(marker));
        }
        d.args = {pb,
                  f["acc"],
                  kind,
                  absl::StrCat(now_ms),
                  min_id,
                  absl::StrCat(settings_.inbox_max_length),
                  absl::StrCat(absl::ToInt64Milliseconds(settings_.dedupe_retention)),
                  kind == "x" ? absl::StrCat(static_cast<int>(event.instrument())) : f["inst"],
                  kind == "x" ? "92" : f["typ"],
                  f["st"],
                  Keys::P(ashard),
                  notification_id,
                  event.request_id(),
                  who.first,
                  who.second,
                  kind == "x" ? event.event_id() : original_event_id};
        // A disclosure of the request to the recipient authority, logged before the entry
        // is acknowledged (a retry re-delivers idempotently and logs again).
        d.record = common::ServiceAuditRecord(
            "rogatory-notification", "DeliverToInbox", event.request_id(),
            common::AccessKind::kDisclose, absl::StrCat("inbox:", who.first, ":", notification_id),
            event.trace_id());
        deliveries.push_back(std::move(d));
      }
      p.count = deliveries.size() - p.first;
      planned[b].push_back(std::move(p));
    }
  }

  // Phase 2: every delivery in flight at once; each audited as soon as its inbox has it.
  auto outcomes = std::make_shared<BatchOutcomes<bool>>(deliveries.size());
  for (size_t i = 0; i < deliveries.size(); ++i) {
    Delivery& d = deliveries[i];
    outcomes->Started();
    redis_.Eval(
        InboxScript(), std::move(d.keys), std::move(d.args),
        [i, outcomes, auditor = auditor_, wakeups = inbox_wakeups_, inbox = std::move(d.inbox),
         record = std::move(d.record)](absl::StatusOr<RedisReply> reply) mutable {
          if (!reply.ok()) return outcomes->Finished(i, reply.status());
          const std::string outcome =
              reply->elements.empty() ? std::string() : reply->elements[0].str;
          if (outcome == "blocked") {
            return outcomes->Finished(
                i, absl::UnavailableError("an earlier delivery to the inbox is not in yet"));
          }
          if (outcome != "ok" && outcome != "duplicate") {
            return outcomes->Finished(i, absl::InternalError("unexpected inbox script reply"));
          }
          if (outcome == "ok" && wakeups != nullptr) wakeups->Notify(inbox);
          if (auditor == nullptr) return outcomes->Finished(i, true);
          auditor->Record(std::move(record), [i, outcomes](absl::Status logged) {
            if (logged.ok()) return outcomes->Finished(i, true);
            outcomes->Finished(
                i, absl::UnavailableError(absl::StrCat("not audited: ", logged.message())));
          });
        });
  }
  const std::vector<absl::StatusOr<bool>> results = outcomes->Wait();

  // Phase 3: per shard, acknowledge (and delete) the longest prefix of entries every
  // delivery of which is in and audited. Not waited for: the shard's next read goes after
  // it on the same connection. If it fails, the entries stay pending: the next pass reads
  // this consumer's own entries first and delivers them again (idempotently).
  int delivered = 0;
  for (size_t b = 0; b < ready.size(); ++b) {
    const int shard = ready[b];
    std::vector<std::string> ids;
    int count = 0;
    for (const Planned& p : planned[b]) {
      absl::Status failed;
      for (size_t i = p.first; i < p.first + p.count && failed.ok(); ++i) {
        failed = results[i].status();
      }
      if (!failed.ok()) {
        common::Log::Warn("inbox delivery failed; will retry",
                          {{"event_id", p.event_id}, {"error", failed.ToString()}});
        retry_own_[shard] = true;  // keep order: the rest of the shard waits for the retry
        break;
      }
      ids.push_back(p.id);
      if (!p.event_id.empty()) ++count;
    }
    if (ids.empty()) continue;
    store_.AckFanout(shard, ids, [unacked = unacked_, shard](absl::StatusOr<int> acked) {
      if (acked.ok()) return;
      unacked->Set(shard);
      common::Log::Warn("fan-out acknowledgement failed; will retry",
                        {{"shard", shard}, {"error", acked.status().ToString()}});
    });
    if (count > 0) {
      delivered += count;
      busy->push_back(shard);
    }
  }
  return delivered;
}

// Every shard's timers at once (their round trips in flight together, not one after the other).
void FanoutWorker::Timers() {
  if (settings_.retrieval_timeout <= absl::ZeroDuration()) return;
  const int64_t now_ms = absl::ToUnixMillis(clock_.Now());
  const int64_t escalation_ms = absl::ToInt64Milliseconds(settings_.escalation_timeout);
  auto results = std::make_shared<BatchOutcomes<int>>(sharding_.shard_count());
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
    results->Started();
    store_.RunRetrievalTimers({shard, now_ms, 100, escalation_ms},
                              [results, shard](absl::StatusOr<int> r) {
                                results->Finished(static_cast<size_t>(shard), std::move(r));
                              });
  }
  const auto handled = results->Wait();
  for (size_t shard = 0; shard < handled.size(); ++shard) {
    if (!handled[shard].ok()) {
      common::Log::Warn("retrieval timers failed; will retry",
                        {{"shard", static_cast<int64_t>(shard)}});
    }
  }
}

void FanoutWorker::UpdateGauges() {
  const int shards = sharding_.shard_count();
  auto results = std::make_shared<BatchOutcomes<NotificationStore::Backlog>>(shards);
  for (int shard = 0; shard < shards; ++shard) {
    results->Started();
    store_.CountBacklog(shard, [results, shard](absl::StatusOr<NotificationStore::Backlog> r) {
      results->Finished(static_cast<size_t>(shard), std::move(r));
    });
  }
  NotificationStore::Backlog total;
  for (const auto& backlog : results->Wait()) {
    if (!backlog.ok()) return;
    total.dead_letters += backlog->dead_letters;
    total.unretrieved += backlog->unretrieved;
  }
  metrics_.dead_letters().Set(static_cast<double>(total.dead_letters));
  metrics_.unretrieved().Set(static_cast<double>(total.unretrieved));
}

}  // namespace rogatory::notification
