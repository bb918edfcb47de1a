#include "in_memory_notification_store.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "evidence.h"

namespace rogatory::notification {
namespace {

std::pair<uint64_t, uint64_t> Pos(const StreamId& id) { return {id.ms, id.seq}; }

}  // namespace

void InMemoryNotificationStore::AddInboxEntry(int shard, const std::string& authority,
                                              const StreamId& id, const InboxEntry& entry,
                                              const std::string& event_id,
                                              const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  Inbox& inbox = inboxes_[{shard, authority}];
  InboxEntry e = entry;
  e.id = id;
  e.cursor = id.ToString();
  inbox.entries[Pos(id)] = {e, Unacked{e.cursor, event_id, request_id}};
  if (inbox.last < id) inbox.last = id;
}

void InMemoryNotificationStore::AddReceivedEvent(int shard, const std::string& request_id,
                                                 const std::string& event_id, int64_t accept_ms,
                                                 const std::map<std::string, std::string>& parties,
                                                 const std::vector<std::string>& recipients) {
  absl::MutexLock lock(&mu_);
  Evidence& ev = evidence_[{shard, event_id}];
  ev.request_id = request_id;
  ev.payload = "event bytes";
  for (const std::string& r : recipients) {
    ev.fields.emplace(EvidenceField(v1::DELIVERY_STAGE_ACCEPTED, r), accept_ms);
    retrieval_due_[shard].emplace(absl::StrCat(event_id, "|", r), accept_ms);
  }
  request_events_[{shard, request_id}].insert({accept_ms, event_id});
  for (const auto& [field, value] : parties) parties_[{shard, request_id}][field] = value;
}

void InMemoryNotificationStore::AddDeadLetter(int shard, const DeadLetterRecord& dead) {
  absl::MutexLock lock(&mu_);
  dead_order_[shard].insert({dead.dead_ms, dead.id});
  dead_[{shard, dead.id}] = dead;
}

void InMemoryNotificationStore::OpenInbox(int shard, const std::string& authority,
                                          const std::string& min_id, int64_t max_length,
                                          Done<InboxBounds> done) {
  InboxBounds bounds;
  {
    absl::MutexLock lock(&mu_);
    Inbox& inbox = inboxes_[{shard, authority}];
    const StreamId min = ParseStreamId(min_id).value_or(StreamId{});
    while (!inbox.entries.empty() && (inbox.entries.begin()->second.first.id < min ||
                                      static_cast<int64_t>(inbox.entries.size()) > max_length)) {
      inbox.floor = inbox.entries.begin()->second.first.id;
      inbox.entries.erase(inbox.entries.begin());
    }
    bounds = InboxBounds{inbox.floor, inbox.last};
  }
  done(bounds);
}

void InMemoryNotificationStore::ReadInbox(int shard, const std::string& authority,
                                          const StreamId& after, size_t count,
                                          Done<InboxPage> done) {
  InboxPage page;
  {
    absl::MutexLock lock(&mu_);
    Inbox& inbox = inboxes_[{shard, authority}];
    page.floor = inbox.floor;
    for (auto it = inbox.entries.upper_bound(Pos(after));
         it != inbox.entries.end() && page.entries.size() < count; ++it) {
      page.entries.push_back(it->second.first);
    }
    page.examined = page.entries.size();
  }
  done(std::move(page));
}

void InMemoryNotificationStore::ReadUnacked(int shard, const std::string& authority,
                                            const std::string& cursor, int max,
                                            Done<std::vector<Unacked>> done) {
  std::vector<Unacked> out;
  {
    absl::MutexLock lock(&mu_);
    Inbox& inbox = inboxes_[{shard, authority}];
    const StreamId to = ParseStreamId(cursor).value_or(StreamId{});
    for (auto it = inbox.entries.upper_bound(Pos(inbox.acked));
         it != inbox.entries.end() && it->second.first.id <= to &&
         static_cast<int>(out.size()) < max;
         ++it) {
      out.push_back(it->second.second);
    }
  }
  done(std::move(out));
}

void InMemoryNotificationStore::AdvanceAcked(int shard, const std::string& authority,
                                             const std::string& cursor, Done<bool> done) {
  bool moved = false;
  {
    absl::MutexLock lock(&mu_);
    Inbox& inbox = inboxes_[{shard, authority}];
    const StreamId to = ParseStreamId(cursor).value_or(StreamId{});
    if (inbox.acked < to) {
      inbox.acked = to;
      moved = true;
    }
  }
  done(moved);
}

void InMemoryNotificationStore::DeliverToInbox(const InboxDelivery& d, Done<DeliveryResult> done) {
  DeliveryResult result;
  {
    absl::MutexLock lock(&mu_);
    const Key marker{d.shard, absl::StrCat(d.recipient, ":", d.notification_id)};
    const bool webhooks = d.kind != "r";
    std::vector<std::string> current;
    if (webhooks) {
      const auto owned = owner_subscriptions_.find({d.shard, d.recipient});
      if (owned != owner_subscriptions_.end()) {
        current.assign(owned->second.begin(), owned->second.end());  // a std::set: sorted
      }
    }
    if (!d.previous_notification_id.empty() &&
        !inbox_markers_.contains(
            {d.shard, absl::StrCat(d.recipient, ":", d.previous_notification_id)})) {
      result.outcome = DeliveryOutcome::kBlocked;
    } else if (inbox_markers_.contains(marker)) {
      result.outcome = DeliveryOutcome::kDuplicate;
    } else if (webhooks && current != d.subscription_ids) {
      result.outcome = DeliveryOutcome::kRetry;
      result.subscription_ids = std::move(current);
    } else {
      Inbox& inbox = inboxes_[{d.shard, d.recipient}];
      const StreamId min = ParseStreamId(d.min_id).value_or(StreamId{});
      while (!inbox.entries.empty() &&
             (inbox.entries.begin()->second.first.id < min ||
              static_cast<int64_t>(inbox.entries.size()) > d.max_length - 1)) {
        inbox.floor = inbox.entries.begin()->second.first.id;
        inbox.entries.erase(inbox.entries.begin());
      }
      StreamId id{static_cast<uint64_t>(d.now_ms), 0};
      if (id <= inbox.last) id = StreamId{inbox.last.ms, inbox.last.seq + 1};
      InboxEntry e;
      e.cursor = id.ToString();
      e.id = id;
      e.event = d.event;
      e.states = d.states;
      e.recipient_state = d.recipient_state;
      e.accept_ms = d.accept_ms;
      e.reannouncement = d.kind == "r";
      inbox.entries[Pos(id)] = {e, Unacked{e.cursor, d.event_id, d.request_id}};
      inbox.last = id;
      if (webhooks) {
        for (const std::string& sid : d.matched) {
          const Key job{d.shard, absl::StrCat(sid, "/", d.notification_id)};
          if (!webhook_jobs_.insert(job).second) continue;
          webhook_due_[job] = d.now_ms;
          ++result.jobs;
        }
      }
      inbox_markers_.insert(marker);
      result.cursor = e.cursor;
    }
  }
  done(std::move(result));
}

void InMemoryNotificationStore::RecordRetrieved(int shard, const std::string& recipient,
                                                const std::vector<std::string>& event_ids,
                                                absl::Time now, absl::Duration, Done<int> done) {
  int n = 0;
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& eid : event_ids) {
      auto ev = evidence_.find({shard, eid});
      if (ev != evidence_.end() &&
          ev->second.fields
              .emplace(EvidenceField(v1::DELIVERY_STAGE_RETRIEVED, recipient),
                       absl::ToUnixMillis(now))
              .second) {
        ++n;
      }
      retrieval_due_[shard].erase(absl::StrCat(eid, "|", recipient));
    }
  }
  done(n);
}

void InMemoryNotificationStore::RecordStage(int shard, const std::string& event_id,
                                            v1::DeliveryStage stage, const std::string& recipient,
                                            const std::string& subscription, absl::Time now,
                                            absl::Duration, Done<bool> done) {
  bool fresh = false;
  {
    absl::MutexLock lock(&mu_);
    auto ev = evidence_.find({shard, event_id});
    if (ev != evidence_.end()) {
      fresh = ev->second.fields
                  .emplace(EvidenceField(stage, recipient, subscription), absl::ToUnixMillis(now))
                  .second;
    }
  }
  done(fresh);
}

std::optional<NotificationStore::RequestEvidence> InMemoryNotificationStore::EvidenceOf(
    int shard, const std::string& request_id, const std::vector<std::string>& event_ids) {
  RequestEvidence out;
  out.request_id = request_id;
  auto p = parties_.find({shard, request_id});
  if (p != parties_.end()) {
    auto field = [&](const char* name) {
      auto f = p->second.find(name);
      return f == p->second.end() ? std::string() : f->second;
    };
    out.issuing = field("iss");
    out.executing = field("exe");
    out.central = field("cen");
    out.translator = field("tra");
    out.notified = field("ntf");
  }
  for (const std::string& eid : event_ids) {
    auto ev = evidence_.find({shard, eid});
    if (ev == evidence_.end()) continue;
    for (const auto& [field, ms] : ev->second.fields) {
      auto first = field.find('|');
      auto second = field.find('|', first + 1);
      if (first == std::string::npos || second == std::string::npos) continue;
      EvidenceRecord r;
      r.event_id = eid;
      r.stage = static_cast<v1::DeliveryStage>(std::stoi(field.substr(0, first)));
      r.recipient = field.substr(first + 1, second - first - 1);
      r.subscription = field.substr(second + 1);
      r.record_ms = ms;
      out.records.push_back(std::move(r));
    }
  }
  return out;
}

void InMemoryNotificationStore::ReadRequestEvidence(int shard, const std::string& request_id,
                                                    int max_events,
                                                    Done<std::optional<RequestEvidence>> done) {
  std::optional<RequestEvidence> out;
  {
    absl::MutexLock lock(&mu_);
    auto events = request_events_.find({shard, request_id});
    if (events != request_events_.end() && !events->second.empty()) {
      std::vector<std::string> ids;
      for (const auto& [ms, eid] : events->second) {
        if (static_cast<int>(ids.size()) >= max_events) break;
        ids.push_back(eid);
      }
      out = EvidenceOf(shard, request_id, ids);
    }
  }
  done(std::move(out));
}

void InMemoryNotificationStore::ReadEventEvidence(int shard, const std::string& event_id,
                                                  Done<std::optional<RequestEvidence>> done) {
  std::optional<RequestEvidence> out;
  {
    absl::MutexLock lock(&mu_);
    auto ev = evidence_.find({shard, event_id});
    if (ev != evidence_.end()) out = EvidenceOf(shard, ev->second.request_id, {event_id});
  }
  done(std::move(out));
}

void InMemoryNotificationStore::CreateSubscription(const NewSubscription& r,
                                                   Done<CreateResult> done) {
  CreateResult result;
  {
    absl::MutexLock lock(&mu_);
    const Key idem{r.shard, absl::StrCat(r.owner, ":", r.request_id)};
    auto record = r.fingerprint.empty() ? idempotency_.end() : idempotency_.find(idem);
    if (record != idempotency_.end()) {
      if (record->second.first != r.fingerprint) {
        result.outcome = CreateOutcome::kConflict;
      } else if (auto s = subscriptions_.find({r.shard, record->second.second});
                 s == subscriptions_.end()) {
        result.outcome = CreateOutcome::kGone;
      } else {
        result.outcome = CreateOutcome::kReplayed;
        result.existing = s->second.stored;
      }
    } else if (static_cast<int>(owner_subscriptions_[{r.shard, r.owner}].size()) >=
               r.max_per_owner) {
      result.outcome = CreateOutcome::kLimit;
    } else {
      Subscription s;
      s.owner = r.owner;
      s.stored = StoredSubscription{r.id, r.endpoint_uri, r.filter, r.create_ms, 0, r.secret};
      subscriptions_[{r.shard, r.id}] = std::move(s);
      owner_subscriptions_[{r.shard, r.owner}].insert(r.id);
      if (!r.fingerprint.empty()) idempotency_[idem] = {r.fingerprint, r.id};
    }
  }
  done(std::move(result));
}

void InMemoryNotificationStore::ListSubscriptions(int shard, const std::string& owner,
                                                  Done<std::vector<StoredSubscription>> done) {
  std::vector<StoredSubscription> out;
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& id : owner_subscriptions_[{shard, owner}]) {
      auto s = subscriptions_.find({shard, id});
      if (s == subscriptions_.end()) continue;
      out.push_back(s->second.stored);
      out.back().secret.clear();
    }
  }
  done(std::move(out));
}

void InMemoryNotificationStore::DeleteSubscription(int shard, const std::string& owner,
                                                   const std::string& id,
                                                   Done<DeleteOutcome> done) {
  DeleteOutcome outcome = DeleteOutcome::kAbsent;
  {
    absl::MutexLock lock(&mu_);
    auto s = subscriptions_.find({shard, id});
    if (s != subscriptions_.end()) {
      if (s->second.owner != owner) {
        outcome = DeleteOutcome::kForeign;
      } else {
        subscriptions_.erase(s);
        owner_subscriptions_[{shard, owner}].erase(id);
        outcome = DeleteOutcome::kDeleted;
      }
    }
  }
  done(outcome);
}

void InMemoryNotificationStore::RotateSecret(const RotateRequest& r,
                                             Done<std::optional<StoredSubscription>> done) {
  std::optional<StoredSubscription> out;
  {
    absl::MutexLock lock(&mu_);
    auto s = subscriptions_.find({r.shard, r.id});
    if (s != subscriptions_.end() && s->second.owner == r.owner) {
      s->second.stored.secret = r.new_secret;
      s->second.stored.rotate_ms = r.now_ms;
      out = s->second.stored;
    }
  }
  done(std::move(out));
}

void InMemoryNotificationStore::ListDeadLetters(int shard, int64_t offset, int count,
                                                const std::string& owner,
                                                Done<DeadLetterPage> done) {
  DeadLetterPage page;
  {
    absl::MutexLock lock(&mu_);
    const auto& order = dead_order_[shard];
    auto it = order.begin();
    for (int64_t i = 0; i < offset && it != order.end(); ++i) ++it;
    for (; it != order.end() && page.examined < count; ++it) {
      ++page.examined;
      const DeadLetterRecord& d = dead_[{shard, it->second}];
      if (!owner.empty() && d.recipient != owner) continue;
      page.dead_letters.push_back(d);
    }
  }
  done(std::move(page));
}

void InMemoryNotificationStore::RedriveDeadLetter(int shard, const std::string& id, int64_t now_ms,
                                                  const std::string& owner, Done<bool> done) {
  bool redriven = false;
  {
    absl::MutexLock lock(&mu_);
    auto d = dead_.find({shard, id});
    if (d != dead_.end() && (owner.empty() || d->second.recipient == owner)) {
      dead_order_[shard].erase({d->second.dead_ms, id});
      dead_.erase(d);
      webhook_due_[{shard, id}] = now_ms;
      redriven = true;
    }
  }
  done(redriven);
}

}  // namespace rogatory::notification
