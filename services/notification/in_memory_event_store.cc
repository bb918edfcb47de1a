// The in-memory store's event side: receiving and erasing events, the fan-out outbox and
// its consumer group, and the retrieval timers (as redis_event_store.cc and
// redis_fanout_store.cc are for Redis). The inbox, evidence, subscriptions and dead letters
// are in in_memory_notification_store.cc.
#include <algorithm>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "evidence.h"
#include "in_memory_notification_store.h"

namespace rogatory::notification {

void InMemoryNotificationStore::ReceiveEvent(const ReceivedEvent& e, Done<ReceiveResult> done) {
  ReceiveResult result;
  {
    absl::MutexLock lock(&mu_);
    if (!seen_.insert(e.dedupe.seen_key).second) {
      result.duplicate = true;
    } else {
      std::map<std::string, std::string>& record = parties_[{e.shard, e.request_id}];
      auto field = [&](const char* name) {
        auto f = record.find(name);
        return f == record.end() ? std::string() : f->second;
      };
      std::set<std::string> was;
      for (const char* role : {"iss", "exe", "cen", "ntf"}) {
        if (record.count(role)) was.insert(field(role));
      }
      for (const auto& [f, value] : e.party_updates) record[f] = value;
      // Parties that join with this event, as "id@state".
      std::vector<std::pair<std::string, std::string>> joined;
      for (const char* role : {"iss", "exe", "cen", "ntf"}) {
        const std::string id = field(role);
        if (!id.empty() && was.insert(id).second) {
          joined.push_back({id, absl::StrCat(id, "@", field(absl::StrCat(role, "_st").c_str()))});
        }
      }
      std::vector<std::string> to;
      std::set<std::string> added;
      auto add = [&](const std::string& id, const std::string& state) {
        if (!id.empty() && added.insert(id).second) to.push_back(absl::StrCat(id, "@", state));
      };
      add(field("iss"), field("iss_st"));
      add(field("exe"), field("exe_st"));
      add(field("cen"), field("cen_st"));
      add(field("ntf"), field("ntf_st"));
      if (e.tell_translator) add(field("tra"), field("tra_st"));
      for (const std::string& extra : e.extra_recipients) {
        const size_t at = extra.find('@');
        add(extra.substr(0, at), at == std::string::npos ? "" : extra.substr(at + 1));
      }
      const std::string states =
          absl::StrCat(",", field("iss_st"), ",", field("req_st"), ",", field("exe_st"), ",");
      const std::string now = absl::StrCat(e.now_ms);
      auto& catch_up = catch_up_[{e.shard, e.request_id}];
      if (!joined.empty()) {
        std::vector<std::string> recipients;
        for (const auto& j : joined) recipients.push_back(j.second);
        for (const std::string& item : catch_up) {
          const size_t first = item.find('|');
          const size_t second =
              first == std::string::npos ? std::string::npos : item.find('|', first + 1);
          if (second == std::string::npos) continue;
          const std::string eid = item.substr(first + 1, second - first - 1);
          auto ev = evidence_.find({e.shard, eid});
          if (ev == evidence_.end() || !ev->second.payload) continue;
          for (const auto& j : joined) {
            ev->second.fields.emplace(EvidenceField(v1::DELIVERY_STAGE_ACCEPTED, j.first),
                                      e.now_ms);
            if (e.due_ms > 0)
              retrieval_due_[e.shard].emplace(absl::StrCat(eid, "|", j.first), e.due_ms);
          }
          AppendFanout(e.shard, {{"ev", *ev->second.payload},
                                 {"to", absl::StrJoin(recipients, ",")},
                                 {"acc", now},
                                 {"kind", "n"},
                                 {"st", states},
                                 {"inst", field("inst")},
                                 {"typ", item.substr(second + 1)}});
          ++result.caught_up;
        }
      }
      Evidence& ev = evidence_[{e.shard, e.event_id}];
      ev.request_id = e.request_id;
      ev.payload = e.event;
      for (const std::string& r : to) {
        const std::string id = r.substr(0, r.find('@'));
        ev.fields.emplace(EvidenceField(v1::DELIVERY_STAGE_ACCEPTED, id), e.now_ms);
        if (e.due_ms > 0)
          retrieval_due_[e.shard].emplace(absl::StrCat(e.event_id, "|", id), e.due_ms);
      }
      auto& events = request_events_[{e.shard, e.request_id}];
      bool listed = false;
      for (const auto& [ms, id] : events) listed = listed || id == e.event_id;
      if (!listed) events.insert({e.now_ms, e.event_id});
      if (!to.empty()) {
        AppendFanout(e.shard, {{"ev", e.event},
                               {"to", absl::StrJoin(to, ",")},
                               {"acc", now},
                               {"kind", "n"},
                               {"st", states},
                               {"inst", absl::StrCat(e.instrument)},
                               {"typ", absl::StrCat(e.type)}});
      }
      result.recipients = static_cast<int>(to.size());
      if (e.catch_up_action == "keep") {
        catch_up.push_back(absl::StrCat(e.deadline_id, "|", e.event_id, "|", e.type));
        while (static_cast<int>(catch_up.size()) > e.catch_up_limit)
          catch_up.erase(catch_up.begin());
      } else if (e.catch_up_action == "drop") {
        const std::string prefix = absl::StrCat(e.deadline_id, "|");
        catch_up.erase(
            std::remove_if(catch_up.begin(), catch_up.end(),
                           [&](const std::string& item) { return absl::StartsWith(item, prefix); }),
            catch_up.end());
      }
    }
  }
  done(result);
}

void InMemoryNotificationStore::AppendFanout(int shard, std::map<std::string, std::string> fields) {
  Outbox& outbox = fanout_[shard];
  outbox.entries[outbox.next++] = std::move(fields);
}

void InMemoryNotificationStore::PrepareFanout(int shard, Done<bool> done) {
  {
    absl::MutexLock lock(&mu_);
    fanout_[shard].group = true;
  }
  done(true);
}

void InMemoryNotificationStore::ReadFanout(const FanoutRead& read, Done<FanoutBatch> done) {
  FanoutBatch batch;
  const absl::Status read_status = [&]() -> absl::Status {
    absl::MutexLock lock(&mu_);
    Outbox& outbox = fanout_[read.shard];
    if (!outbox.group) return absl::FailedPreconditionError("NOGROUP: no consumer group");
    auto add = [&](uint64_t n) {
      FanoutEntry e;
      e.id = absl::StrCat("0-", n);
      auto entry = outbox.entries.find(n);
      if (entry == outbox.entries.end()) {
        e.gone = true;
      } else {
        e.fields = entry->second;
      }
      batch.entries.push_back(std::move(e));
    };
    const auto full = [&] { return static_cast<int>(batch.entries.size()) >= read.count; };
    if (read.own_first) {
      for (const auto& [n, consumer] : outbox.pending) {
        if (full()) break;
        if (consumer == read.consumer) add(n);
      }
      if (!batch.entries.empty()) {
        batch.own_drained = false;
        return absl::OkStatus();
      }
    }
    if (read.claim_idle_ms > 0) {
      for (auto& [n, consumer] : outbox.pending) {
        if (full()) break;
        if (consumer == read.consumer) continue;
        consumer = read.consumer;
        add(n);
      }
      if (!batch.entries.empty()) return absl::OkStatus();
    }
    for (auto it = outbox.entries.upper_bound(outbox.delivered);
         it != outbox.entries.end() && !full(); ++it) {
      outbox.delivered = it->first;
      outbox.pending[it->first] = read.consumer;
      add(it->first);
    }
    return absl::OkStatus();
  }();
  if (!read_status.ok()) return done(read_status);
  done(std::move(batch));
}

void InMemoryNotificationStore::AckFanout(int shard, const std::vector<std::string>& ids,
                                          Done<int> done) {
  int deleted = 0;
  {
    absl::MutexLock lock(&mu_);
    Outbox& outbox = fanout_[shard];
    for (const std::string& id : ids) {
      uint64_t n = 0;
      if (!absl::StartsWith(id, "0-") || !absl::SimpleAtoi(id.substr(2), &n)) continue;
      outbox.pending.erase(n);
      deleted += static_cast<int>(outbox.entries.erase(n));
    }
  }
  done(deleted);
}

void InMemoryNotificationStore::RunRetrievalTimers(const TimerRun& run, Done<TimerOutcome> done) {
  int handled = 0;
  int64_t next_due_ms = std::numeric_limits<int64_t>::max();
  {
    absl::MutexLock lock(&mu_);
    auto& timers = retrieval_due_[run.shard];
    std::set<std::pair<int64_t, std::string>> due;
    for (const auto& [member, ms] : timers) {
      if (ms <= run.now_ms) due.insert({ms, member});
    }
    const std::string now = absl::StrCat(run.now_ms);
    for (const auto& [ms, member] : due) {
      if (handled >= run.limit) break;
      ++handled;
      const size_t bar = member.find('|');
      if (bar == std::string::npos) {
        timers.erase(member);
        continue;
      }
      const std::string eid = member.substr(0, bar), who = member.substr(bar + 1);
      auto ev = evidence_.find({run.shard, eid});
      auto has = [&](v1::DeliveryStage stage) {
        return ev->second.fields.count(EvidenceField(stage, who)) > 0;
      };
      if (ev == evidence_.end() || !ev->second.payload || has(v1::DELIVERY_STAGE_RETRIEVED)) {
        timers.erase(member);
      } else if (!has(v1::DELIVERY_STAGE_REANNOUNCED)) {
        ev->second.fields[EvidenceField(v1::DELIVERY_STAGE_REANNOUNCED, who)] = run.now_ms;
        timers[member] = run.now_ms + run.escalation_ms;
        AppendFanout(run.shard, {{"ev", *ev->second.payload},
                                 {"to", absl::StrCat(who, "@")},
                                 {"acc", now},
                                 {"kind", "r"},
                                 {"st", ""},
                                 {"inst", ""},
                                 {"typ", ""}});
      } else {
        timers.erase(member);
        if (has(v1::DELIVERY_STAGE_ESCALATED)) continue;
        ev->second.fields[EvidenceField(v1::DELIVERY_STAGE_ESCALATED, who)] = run.now_ms;
        auto& record = parties_[{run.shard, ev->second.request_id}];
        auto field = [&](const char* name) {
          auto f = record.find(name);
          return f == record.end() ? std::string() : f->second;
        };
        for (const char* role : {"cen", "iss", "exe"}) {
          const std::string id = field(role);
          if (id.empty() || id == who) continue;
          AppendFanout(run.shard,
                       {{"ev", *ev->second.payload},
                        {"to", absl::StrCat(id, "@", field(absl::StrCat(role, "_st").c_str()))},
                        {"acc", now},
                        {"kind", "x"},
                        {"about", who},
                        {"st", ""},
                        {"inst", ""},
                        {"typ", "92"}});
          break;
        }
      }
    }
    for (const auto& [member, ms] : timers) next_due_ms = std::min(next_due_ms, ms);
  }
  done(TimerOutcome{handled, next_due_ms});
}

void InMemoryNotificationStore::CountBacklog(int shard, Done<Backlog> done) {
  Backlog backlog;
  {
    absl::MutexLock lock(&mu_);
    backlog.dead_letters = static_cast<int64_t>(dead_order_[shard].size());
    backlog.unretrieved = static_cast<int64_t>(retrieval_due_[shard].size());
  }
  done(backlog);
}

void InMemoryNotificationStore::EraseRequest(int shard, const std::string& request_id,
                                             const common::Dedupe& dedupe, Done<int> done) {
  int n = -1;
  {
    absl::MutexLock lock(&mu_);
    if (seen_.insert(dedupe.seen_key).second) {
      n = 0;
      for (const auto& [ms, eid] : request_events_[{shard, request_id}]) {
        auto ev = evidence_.find({shard, eid});
        if (ev != evidence_.end()) {
          ev->second.payload.reset();
          for (const auto& [field, at] : ev->second.fields) {
            const size_t first = field.find('|');
            const size_t second = field.find('|', first + 1);
            if (first == std::string::npos || second == std::string::npos) continue;
            retrieval_due_[shard].erase(
                absl::StrCat(eid, "|", field.substr(first + 1, second - first - 1)));
          }
        }
        ++n;
      }
      catch_up_.erase({shard, request_id});
    }
  }
  done(n);
}

}  // namespace rogatory::notification
