#include "fanout_worker.h"

#include <algorithm>
#include <limits>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "batch_outcomes.h"
#include "google/protobuf/util/time_util.h"
#include "notification_keys.h"
#include "rogatory/common/audit_log.h"
#include "rogatory/common/event_builder.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/v1/events.pb.h"

namespace rogatory::notification {
namespace {

constexpr int kBatch = 50;
// A fan-out entry read by a replica that has not acknowledged it for this long
// is taken over.
constexpr int64_t kClaimIdleMs = 30000;

// The most owners whose subscriptions the worker keeps (FanoutWorker::subscriptions_).
constexpr size_t kMaxCachedOwners = 10000;
// Deliveries answered "retry" (the owner's subscriptions changed) are tried again after the
// cache is refreshed, up to this many rounds in one pass; then the entry waits for the next.
constexpr int kDeliveryRounds = 3;

}  // namespace

std::string EscalationEventId(const std::string& event_id, const std::string& recipient) {
  return absl::StrCat(event_id, ":not-retrieved:", recipient);
}

FanoutWorker::FanoutWorker(NotificationStore& store, const common::Clock& clock,
                           common::Sharding sharding, NotificationSettings settings,
                           NotificationMetrics& metrics)
    : store_(store),
      clock_(clock),
      sharding_(sharding),
      settings_(settings),
      metrics_(metrics),
      wakeups_(std::make_shared<FanoutWakeups>()),
      unacked_(std::make_shared<ShardFlags>(sharding.shard_count())),
      consumer_(common::NewUlid(clock.Now())),
      group_ready_(sharding.shard_count(), false),
      retry_own_(sharding.shard_count(), false),
      next_timer_ms_(sharding.shard_count(), 0) {}

FanoutWorker::~FanoutWorker() {
  listener_.reset();
  wakeups_->Stop();
  if (thread_.joinable()) thread_.join();
}

void FanoutWorker::Start() {
  thread_ = std::thread([this] {
    // Pacing of the safety net and the gauges: the clock's monotonic reading.
    common::MonotonicTime next_gauges = common::MonotonicTime::InfinitePast();
    common::MonotonicTime next_net = common::MonotonicTime::InfinitePast();
    std::vector<int> busy;  // shards that delivered in the last pass: they may have more
    while (!wakeups_->stopped()) {
      std::vector<int> shards;
      const bool net = clock_.MonotonicNow() >= next_net;
      if (net) {
        // Every shard: entries whose wake-up was lost, a dead replica's, and retries.
        next_net = clock_.MonotonicNow() + settings_.fanout_recheck_interval;
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
      Pass(shards, /*all=*/net, &busy);
      if (clock_.MonotonicNow() >= next_gauges) {
        UpdateGauges();
        next_gauges =
            clock_.MonotonicNow() + std::max(settings_.fanout_recheck_interval, absl::Seconds(30));
      }
      if (busy.empty()) {
        absl::Duration wait = next_net - clock_.MonotonicNow();
        const int64_t due_ms = NextTimerDueMs();
        if (due_ms != std::numeric_limits<int64_t>::max()) {
          wait = std::min(wait, absl::FromUnixMillis(due_ms) - clock_.Now());
        }
        if (wait > absl::ZeroDuration()) {
          for (int shard : wakeups_->Wait(wait)) busy.push_back(shard);
        }
      }
    }
  });
}

void FanoutWorker::ListenForAppends(common::RedisUrl url, std::string own_publisher) {
  const int shards = sharding_.shard_count();
  listener_ = std::make_unique<common::PubSubListener>(
      std::move(url), Keys::FanoutAppendedChannel(),
      common::PubSubListener::Callbacks{
          [wakeups = wakeups_, own = std::move(own_publisher), shards](const std::string& payload) {
            const std::pair<std::string, std::string> parts =
                absl::StrSplit(payload, absl::MaxSplits(' ', 1));
            int shard = -1;
            if (parts.second == own || !absl::SimpleAtoi(parts.first, &shard) || shard < 0 ||
                shard >= shards) {
              return;
            }
            wakeups->Wake(shard);
          },
          [wakeups = wakeups_, shards] {
            for (int shard = 0; shard < shards; ++shard) wakeups->Wake(shard);
          },
          {}});
}

int FanoutWorker::RunOnce(bool all) {
  std::vector<int> shards;
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) shards.push_back(shard);
  std::vector<int> busy;
  return Pass(shards, all, &busy);
}

int FanoutWorker::Pass(const std::vector<int>& shards, bool all, std::vector<int>* busy) {
  // Entries a dead replica left are claimed on the safety-net pass only; timers run when due
  // (every shard's on the safety-net pass).
  const int total = DeliverShards(shards, /*claim_abandoned=*/all, busy);
  Timers(all);
  return total;
}

int64_t FanoutWorker::NextTimerDueMs() const {
  if (settings_.retrieval_timeout <= absl::ZeroDuration()) {
    return std::numeric_limits<int64_t>::max();
  }
  return *std::min_element(next_timer_ms_.begin(), next_timer_ms_.end());
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
    NotificationStore::InboxDelivery call;
    std::string instrument, type;  // what the owner's subscription filters match
    std::string inbox;             // whose Subscribe readers to wake
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
    // Per inbox, the batch's latest delivery to it (the next one waits for it).
    std::map<std::string, std::string> last_delivered;
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
      if (kind == "n" && settings_.retrieval_timeout > absl::ZeroDuration()) {
        // Its recipients' retrieval timers (in this shard) are due this much after acceptance.
        int64_t accepted_ms = 0;
        if (absl::SimpleAtoi(f["acc"], &accepted_ms)) {
          next_timer_ms_[shard] =
              std::min(next_timer_ms_[shard],
                       accepted_ms + absl::ToInt64Milliseconds(settings_.retrieval_timeout));
        }
      }
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
        NotificationStore::InboxDelivery& c = d.call;
        c.shard = ashard;
        c.recipient = who.first;
        c.recipient_state = who.second;
        c.notification_id = notification_id;
        auto previous = last_delivered.find(d.inbox);
        if (previous != last_delivered.end()) {
          c.previous_notification_id = previous->second;
          previous->second = notification_id;
        } else {
          last_delivered.emplace(d.inbox, notification_id);
        }
        c.event = pb;
        c.event_id = kind == "x" ? event.event_id() : original_event_id;
        c.request_id = event.request_id();
        c.kind = kind;
        c.states = f["st"];
        absl::SimpleAtoi(f["acc"], &c.accept_ms);
        c.now_ms = now_ms;
        c.min_id = min_id;
        c.max_length = settings_.inbox_max_length;
        c.marker_retention = settings_.dedupe_retention;
        d.instrument = kind == "x" ? absl::StrCat(static_cast<int>(event.instrument())) : f["inst"];
        d.type = kind == "x" ? "92" : f["typ"];
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
  // Webhook subscriptions are filtered here, with the cached subscriptions of each owner; a
  // delivery whose owner's subscriptions changed answers "retry" and goes again (with the
  // deliveries to the same inboxes it blocked) once the cache is refreshed.
  struct Attempt {
    bool retry = false;    // the owner's subscriptions are `current`
    bool blocked = false;  // an earlier delivery to the inbox is not in
    std::vector<std::string> current;
  };
  std::vector<absl::StatusOr<bool>> results(deliveries.size(), absl::UnknownError("not delivered"));
  std::vector<size_t> pending(deliveries.size());
  for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  for (int round = 1; !pending.empty(); ++round) {
    std::vector<std::string> owners;
    for (size_t i : pending) {
      if (deliveries[i].call.kind != "r") owners.push_back(deliveries[i].call.recipient);
    }
    LoadSubscriptions(owners);
    auto outcomes = std::make_shared<BatchOutcomes<Attempt>>(deliveries.size());
    std::vector<bool> sent(deliveries.size(), false);
    for (size_t i : pending) {
      Delivery& d = deliveries[i];
      NotificationStore::InboxDelivery& c = d.call;
      c.subscription_ids.clear();
      c.matched.clear();
      if (c.kind != "r") {
        auto cached = subscriptions_.find(c.recipient);
        if (cached == subscriptions_.end()) {
          results[i] = absl::UnavailableError("the recipient's subscriptions were not read");
          continue;
        }
        c.subscription_ids = cached->second.ids;
        for (size_t s = 0; s < cached->second.ids.size(); ++s) {
          if (FilterMatches(cached->second.filters[s], d.instrument, d.type, c.states)) {
            c.matched.push_back(cached->second.ids[s]);
          }
        }
      }
      sent[i] = true;
      outcomes->Started();
      store_.DeliverToInbox(c, [i, outcomes, auditor = auditor_, wakeups = inbox_wakeups_,
                                inbox = d.inbox, record = d.record, shard = c.shard,
                                webhooks = c.matched.empty() ? nullptr : webhook_wakeups_](
                                   absl::StatusOr<NotificationStore::DeliveryResult> r) mutable {
        using Outcome = NotificationStore::DeliveryOutcome;
        if (!r.ok()) return outcomes->Finished(i, r.status());
        if (r->outcome == Outcome::kBlocked) return outcomes->Finished(i, Attempt{false, true, {}});
        if (r->outcome == Outcome::kRetry) {
          return outcomes->Finished(i, Attempt{true, false, std::move(r->subscription_ids)});
        }
        if (r->outcome == Outcome::kDelivered && wakeups != nullptr) {
          wakeups->Notify(inbox, r->cursor);
        }
        if (r->outcome == Outcome::kDelivered && webhooks != nullptr) webhooks->Wake(shard);
        if (auditor == nullptr) return outcomes->Finished(i, Attempt{});
        auditor->Record(std::move(record), [i, outcomes](absl::Status logged) {
          if (logged.ok()) return outcomes->Finished(i, Attempt{});
          outcomes->Finished(
              i, absl::UnavailableError(absl::StrCat("not audited: ", logged.message())));
        });
      });
    }
    const std::vector<absl::StatusOr<Attempt>> attempts = outcomes->Wait();
    bool changed = false;
    for (size_t i : pending) {
      if (attempts[i].ok() && attempts[i]->retry) {
        changed = true;
        UpdateSubscriptions(deliveries[i].call.recipient, attempts[i]->current);
      }
    }
    std::vector<size_t> again;
    for (size_t i : pending) {
      if (!sent[i]) continue;  // its owner's subscriptions were not read
      if (!attempts[i].ok()) {
        results[i] = attempts[i].status();
      } else if (attempts[i]->retry || attempts[i]->blocked) {
        if (changed && round < kDeliveryRounds) {
          again.push_back(i);
        } else {
          results[i] = absl::UnavailableError(
              attempts[i]->retry ? "the recipient's subscriptions keep changing"
                                 : "an earlier delivery to the inbox is not in yet");
        }
      } else {
        results[i] = true;
      }
    }
    pending = std::move(again);
  }

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

void FanoutWorker::LoadSubscriptions(const std::vector<std::string>& owners) {
  std::vector<std::string> missing;
  for (const std::string& owner : owners) {
    if (!subscriptions_.contains(owner) &&
        std::find(missing.begin(), missing.end(), owner) == missing.end()) {
      missing.push_back(owner);
    }
  }
  if (missing.empty()) return;
  using Listed = std::vector<NotificationStore::StoredSubscription>;
  auto reads = std::make_shared<BatchOutcomes<Listed>>(missing.size());
  for (size_t i = 0; i < missing.size(); ++i) {
    reads->Started();
    store_.ListSubscriptions(
        sharding_.ShardFor(missing[i]), missing[i],
        [reads, i](absl::StatusOr<Listed> listed) { reads->Finished(i, std::move(listed)); });
  }
  const std::vector<absl::StatusOr<Listed>> listed = reads->Wait();
  for (size_t i = 0; i < missing.size(); ++i) {
    if (!listed[i].ok()) {
      common::Log::Warn("reading a recipient's subscriptions failed; will retry",
                        {{"error", listed[i].status().ToString()}});
      continue;
    }
    std::vector<const NotificationStore::StoredSubscription*> sorted;
    for (const auto& s : *listed[i]) sorted.push_back(&s);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto* a, const auto* b) { return a->id < b->id; });
    OwnerSubscriptions owned;
    for (const auto* s : sorted) {
      owned.ids.push_back(s->id);
      owned.filters.push_back(s->filter);
    }
    if (subscriptions_.size() >= kMaxCachedOwners) subscriptions_.erase(subscriptions_.begin());
    subscriptions_[missing[i]] = std::move(owned);
  }
}

void FanoutWorker::UpdateSubscriptions(const std::string& owner,
                                       const std::vector<std::string>& current) {
  auto cached = subscriptions_.find(owner);
  if (cached == subscriptions_.end()) return;
  // Only removals: the filters of those left are known (a filter never changes). Otherwise
  // the owner is read again.
  OwnerSubscriptions kept;
  for (const std::string& id : current) {
    auto at = std::lower_bound(cached->second.ids.begin(), cached->second.ids.end(), id);
    if (at == cached->second.ids.end() || *at != id) {
      subscriptions_.erase(cached);
      return;
    }
    kept.ids.push_back(id);
    kept.filters.push_back(cached->second.filters[at - cached->second.ids.begin()]);
  }
  cached->second = std::move(kept);
}

// The shards whose next timer is due (every shard's when `all`), their round trips in flight
// together; each answers when its next timer is due, so an idle fan-out sleeps until then.
void FanoutWorker::Timers(bool all) {
  if (settings_.retrieval_timeout <= absl::ZeroDuration()) return;
  const int64_t now_ms = absl::ToUnixMillis(clock_.Now());
  const int64_t escalation_ms = absl::ToInt64Milliseconds(settings_.escalation_timeout);
  std::vector<int> due;
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
    if (all || next_timer_ms_[shard] <= now_ms) due.push_back(shard);
  }
  if (due.empty()) return;
  auto results = std::make_shared<BatchOutcomes<NotificationStore::TimerOutcome>>(due.size());
  for (size_t i = 0; i < due.size(); ++i) {
    results->Started();
    store_.RunRetrievalTimers({due[i], now_ms, 100, escalation_ms},
                              [results, i](absl::StatusOr<NotificationStore::TimerOutcome> r) {
                                results->Finished(i, std::move(r));
                              });
  }
  const auto handled = results->Wait();
  for (size_t i = 0; i < due.size(); ++i) {
    const int shard = due[i];
    if (!handled[i].ok()) {
      common::Log::Warn("retrieval timers failed; will retry", {{"shard", shard}});
      next_timer_ms_[shard] = now_ms + 1000;
      continue;
    }
    // Not before 10 ms from now: a timer the run left alone (its event changed meanwhile)
    // is read again then, not in a busy loop.
    next_timer_ms_[shard] = std::max(handled[i]->next_due_ms, now_ms + 10);
    // Re-announcements and escalations are new fan-out entries of the shard.
    if (handled[i]->handled > 0) wakeups_->Wake(shard);
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
