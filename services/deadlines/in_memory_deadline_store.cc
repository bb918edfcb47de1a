#include "in_memory_deadline_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "deadline_logic.h"

namespace rogatory::deadlines {
namespace {

int64_t Ms(absl::Time t) { return absl::ToUnixMillis(t); }
// As the Redis store: a timer's score is its due time rounded up to the millisecond.
int64_t TimerScore(absl::Time due) {
  const int64_t ms = absl::ToUnixMillis(due);
  return absl::FromUnixMillis(ms) < due ? ms + 1 : ms;
}

bool IsOpenState(int state) { return IsOpen(static_cast<v1::DeadlineState>(state)); }

constexpr int kOverdue = v1::DEADLINE_STATE_OVERDUE;

}  // namespace

void InMemoryDeadlineStore::Index::Add(const std::string& member, int64_t score) {
  Remove(member);
  score_of[member] = score;
  order.emplace(score, member);
}

void InMemoryDeadlineStore::Index::Remove(const std::string& member) {
  auto it = score_of.find(member);
  if (it == score_of.end()) return;
  order.erase({it->second, member});
  score_of.erase(it);
}

InMemoryDeadlineStore::InMemoryDeadlineStore(common::Sharding sharding)
    : DeadlineStore(sharding), shards_(sharding.shard_count()) {}

void InMemoryDeadlineStore::Get(const std::string& deadline_id, GetCallback done,
                                const std::string& idempotency_key) {
  absl::StatusOr<StoredDeadline> out = absl::NotFoundError("no deadline has this id");
  auto shard = ShardOfDeadline(deadline_id);
  if (shard.ok()) {
    absl::MutexLock lock(&mu_);
    const Shard& s = shards_[*shard];
    auto it = s.deadlines.find(deadline_id);
    if (it != s.deadlines.end()) {
      StoredDeadline d = it->second.stored;
      d.replayed = !idempotency_key.empty() && it->second.idempotency_keys.count(idempotency_key);
      out = std::move(d);
    }
  }
  done(std::move(out));
}

absl::StatusOr<StoredDeadline> InMemoryDeadlineStore::GetBlocking(const std::string& deadline_id) {
  absl::StatusOr<StoredDeadline> out;
  Get(deadline_id, [&out](absl::StatusOr<StoredDeadline> d) { out = std::move(d); });
  if (out.ok()) out->replayed = false;
  return out;
}

CommitOutcome InMemoryDeadlineStore::CommitLocked(Shard& s,
                                                  const std::vector<DeadlineWrite>& writes,
                                                  const CommitOptions& options) {
  const std::string& claim = options.claim_member;
  if (options.dedupe != nullptr && !s.seen.insert(options.dedupe->seen_key).second) {
    return CommitOutcome::kDuplicate;
  }
  // A refusal undoes the duplicate marker, so the event is handled on retry.
  auto refuse = [&](CommitOutcome o) {
    if (options.dedupe != nullptr) s.seen.erase(options.dedupe->seen_key);
    return o;
  };
  if (!claim.empty()) {
    auto t = s.tokens.find(claim);
    if (t == s.tokens.end() || t->second.first != options.claim_token) {
      return refuse(CommitOutcome::kFenced);
    }
  }
  for (const DeadlineWrite& w : writes) {
    auto it = s.deadlines.find(w.deadline.id());
    if (!options.idempotency_key.empty() && it != s.deadlines.end() &&
        it->second.idempotency_keys.count(options.idempotency_key)) {
      return refuse(CommitOutcome::kReplayed);
    }
    if (w.expected_version == 0) {
      if (it != s.deadlines.end()) return refuse(CommitOutcome::kExists);
    } else if (it == s.deadlines.end() || it->second.stored.version != w.expected_version ||
               it->second.authority != w.stored_authority) {
      return refuse(CommitOutcome::kConflict);
    }
  }
  for (const DeadlineWrite& w : writes) {
    const v1::Deadline& d = w.deadline;
    const std::string& id = d.id();
    const std::vector<TimerSpec> timers = TimersOf(d);
    const auto next =
        std::min_element(timers.begin(), timers.end(),
                         [](const TimerSpec& a, const TimerSpec& b) { return a.due < b.due; });
    const std::string member = next == timers.end() ? "" : next->member;
    const int64_t score = next == timers.end() ? 0 : TimerScore(next->due);
    auto found = s.deadlines.find(id);
    const bool existed = found != s.deadlines.end();
    const Record old = existed ? found->second : Record();
    // Timers that went away are dropped, claimed or not (a claimant then finds itself
    // fenced); a claimed timer that keeps its due time keeps its claim.
    bool keep_claim = false;
    if (existed && !old.timer.empty() && old.timer != claim) {
      auto t = s.tokens.find(old.timer);
      if (old.timer == member && t != s.tokens.end() && t->second.second == score) {
        keep_claim = true;
      } else {
        s.timers.Remove(old.timer);
        s.claims.Remove(old.timer);
        s.tokens.erase(old.timer);
      }
    }
    const int state = static_cast<int>(d.state());
    const bool open = IsOpenState(state);
    const int instrument = static_cast<int>(d.instrument());
    const std::string authority = IndexedAuthority(d);
    const int64_t due = Ms(FromProtoTime(d.due_time()));
    const bool same_open =
        open && existed && old.open && old.instrument == instrument && old.authority == authority;
    if (existed && old.open && !same_open) {
      --s.stats[absl::StrCat("open:", old.instrument)];
      s.indexes["open"].Remove(id);
      if (!old.authority.empty()) s.indexes["byauth:" + old.authority].Remove(id);
    }
    if (existed && old.state == kOverdue && state != kOverdue) --s.stats["overdue"];
    if (!member.empty() && !keep_claim) s.timers.Add(member, score);
    Record& r = s.deadlines[id];
    r.stored = StoredDeadline{d, w.expected_version + 1, false};
    r.stored.deadline.set_etag(DeadlineEtag(w.expected_version + 1));
    r.timer = member;
    r.open = open;
    r.instrument = instrument;
    r.authority = authority;
    r.state = state;
    r.request_id = d.request_id();
    s.indexes["byreq:" + d.request_id()].Add(id, due);
    if (open) {
      if (!same_open) ++s.stats[absl::StrCat("open:", instrument)];
      s.indexes["open"].Add(id, due);
      if (!authority.empty()) s.indexes["byauth:" + authority].Add(id, due);
    }
    if (state == kOverdue && !(existed && old.state == kOverdue)) ++s.stats["overdue"];
    if (!options.idempotency_key.empty()) r.idempotency_keys.insert(options.idempotency_key);
    if (w.event) {
      common::v1::Event e = *w.event;
      e.set_sequence(++s.sequences[d.request_id()]);
      s.outbox.push_back(std::move(e));
    }
  }
  if (!claim.empty()) {
    s.claims.Remove(claim);
    s.tokens.erase(claim);
  }
  if (!options.parties_request_id.empty()) {
    const common::RequestParties& p = options.parties;
    auto& stored = s.parties[options.parties_request_id];
    const std::pair<const char*, const std::string*> fields[] = {{"ia", &p.issuing_authority_id},
                                                                 {"is", &p.issuing_state},
                                                                 {"ea", &p.executing_authority_id},
                                                                 {"rs", &p.requested_state},
                                                                 {"na", &p.notified_authority_id}};
    for (const auto& [name, value] : fields) {
      if (!value->empty()) stored[name] = *value;
    }
    if (stored.empty()) s.parties.erase(options.parties_request_id);
  }
  return CommitOutcome::kOk;
}

absl::StatusOr<CommitOutcome> InMemoryDeadlineStore::CommitBlocking(
    int shard, std::vector<DeadlineWrite> writes, const CommitOptions& options) {
  if (shard < 0 || shard >= sharding().shard_count()) {
    return absl::InvalidArgumentError("no such shard");
  }
  absl::MutexLock lock(&mu_);
  return CommitLocked(shards_[shard], writes, options);
}

void InMemoryDeadlineStore::Commit(int shard, std::vector<DeadlineWrite> writes,
                                   const CommitOptions& options, CommitCallback done) {
  done(CommitBlocking(shard, std::move(writes), options));
}

void InMemoryDeadlineStore::ListIndex(int shard, const std::string& index, absl::Time due_before,
                                      int limit, ListCallback done) {
  std::vector<StoredDeadline> out;
  {
    absl::MutexLock lock(&mu_);
    Shard& s = shards_[shard];
    auto it = s.indexes.find(index);
    if (it != s.indexes.end()) {
      int read = 0;
      for (const auto& [score, id] : it->second.order) {
        if (score > Ms(due_before) || read++ >= limit) break;
        auto d = s.deadlines.find(id);
        if (d != s.deadlines.end()) out.push_back(d->second.stored);
      }
    }
  }
  done(std::move(out));
}

void InMemoryDeadlineStore::ListIndexPage(int shard, const std::string& index, int64_t max_score,
                                          int limit, const std::optional<IndexCursor>& after,
                                          PageCallback done) {
  IndexPage page;
  {
    absl::MutexLock lock(&mu_);
    Shard& s = shards_[shard];
    auto it = s.indexes.find(index);
    if (it != s.indexes.end()) {
      const auto& order = it->second.order;
      auto from = after ? order.upper_bound({after->score, after->id}) : order.begin();
      int read = 0;
      for (; from != order.end() && read < limit; ++from) {
        if (from->first > max_score) break;
        ++read;
        IndexEntry e;
        e.score = from->first;
        e.id = from->second;
        auto d = s.deadlines.find(e.id);
        if (d != s.deadlines.end()) e.deadline = d->second.stored;
        page.entries.push_back(std::move(e));
      }
      page.more = read == limit;
    }
  }
  done(std::move(page));
}

absl::StatusOr<std::optional<absl::Time>> InMemoryDeadlineStore::NextDue(int shard) {
  absl::MutexLock lock(&mu_);
  const Shard& s = shards_[shard];
  std::optional<int64_t> earliest;
  for (const Index* set : {&s.timers, &s.claims}) {
    if (set->order.empty()) continue;
    const int64_t first = set->order.begin()->first;
    if (!earliest || first < *earliest) earliest = first;
  }
  if (!earliest) return std::nullopt;
  return absl::FromUnixMillis(*earliest);
}

absl::StatusOr<std::vector<ClaimedTimer>> InMemoryDeadlineStore::Claim(int shard, absl::Time now,
                                                                       absl::Duration lease,
                                                                       int limit) {
  const int64_t now_ms = Ms(now);
  const int64_t until = now_ms + absl::ToInt64Milliseconds(lease);
  std::vector<ClaimedTimer> out;
  absl::MutexLock lock(&mu_);
  Shard& s = shards_[shard];
  auto claim = [&](const std::string& member, int64_t due, bool takeover) {
    const std::string token = absl::StrCat(++s.fence);
    s.claims.Add(member, until);
    s.tokens[member] = {token, due};
    ClaimedTimer t;
    t.member = member;
    t.token = token;
    t.due = absl::FromUnixMillis(due);
    t.takeover = takeover;
    out.push_back(std::move(t));
  };
  std::vector<std::string> expired;
  for (const auto& [score, member] : s.claims.order) {
    if (score > now_ms || static_cast<int>(expired.size()) >= limit) break;
    expired.push_back(member);
  }
  for (const std::string& m : expired) {
    auto t = s.tokens.find(m);
    claim(m, t == s.tokens.end() ? 0 : t->second.second, true);
  }
  std::vector<std::pair<int64_t, std::string>> due;
  for (const auto& entry : s.timers.order) {
    if (entry.first > now_ms || static_cast<int>(expired.size() + due.size()) >= limit) break;
    due.push_back(entry);
  }
  for (const auto& [score, member] : due) {
    s.timers.Remove(member);
    claim(member, score, false);
  }
  for (ClaimedTimer& t : out) {
    auto d = s.deadlines.find(t.member.substr(0, t.member.find('|')));
    if (d != s.deadlines.end()) t.deadline = d->second.stored;
  }
  return out;
}

void InMemoryDeadlineStore::EraseRequest(int shard, const std::string& request_id,
                                         const common::Dedupe& dedupe, CommitCallback done) {
  CommitOutcome outcome = CommitOutcome::kOk;
  {
    absl::MutexLock lock(&mu_);
    Shard& s = shards_[shard];
    if (!s.seen.insert(dedupe.seen_key).second) {
      outcome = CommitOutcome::kDuplicate;
    } else {
      auto index = s.indexes.find("byreq:" + request_id);
      if (index != s.indexes.end()) {
        for (const auto& [score, id] : index->second.order) {
          auto it = s.deadlines.find(id);
          if (it == s.deadlines.end()) continue;
          const Record& old = it->second;
          if (!old.timer.empty()) {
            s.timers.Remove(old.timer);
            s.claims.Remove(old.timer);
            s.tokens.erase(old.timer);
          }
          if (old.open) {
            --s.stats[absl::StrCat("open:", old.instrument)];
            s.indexes["open"].Remove(id);
            if (!old.authority.empty()) s.indexes["byauth:" + old.authority].Remove(id);
          }
          if (old.state == kOverdue) --s.stats["overdue"];
          s.deadlines.erase(it);
        }
        s.indexes.erase("byreq:" + request_id);
      }
      s.sequences.erase(request_id);
      s.parties.erase(request_id);
    }
  }
  done(outcome);
}

void InMemoryDeadlineStore::GetParties(const std::string& request_id, PartiesCallback done) {
  auto shard = ShardOfRequest(request_id);
  if (!shard.ok()) return done(shard.status());
  std::optional<common::RequestParties> out;
  {
    absl::MutexLock lock(&mu_);
    const Shard& s = shards_[*shard];
    auto it = s.parties.find(request_id);
    if (it != s.parties.end()) {
      auto field = [&](const char* name) {
        auto f = it->second.find(name);
        return f == it->second.end() ? std::string() : f->second;
      };
      common::RequestParties p;
      p.issuing_authority_id = field("ia");
      p.issuing_state = field("is");
      p.executing_authority_id = field("ea");
      p.requested_state = field("rs");
      p.notified_authority_id = field("na");
      out = std::move(p);
    }
  }
  done(std::move(out));
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> InMemoryDeadlineStore::Stats(
    int shard) {
  absl::MutexLock lock(&mu_);
  const auto& stats = shards_[shard].stats;
  return std::vector<std::pair<std::string, int64_t>>(stats.begin(), stats.end());
}

absl::StatusOr<int64_t> InMemoryDeadlineStore::CountOpenDue(int shard, absl::Time from,
                                                            absl::Time to) {
  absl::MutexLock lock(&mu_);
  const auto open = shards_[shard].indexes.find("open");
  if (open == shards_[shard].indexes.end()) return 0;
  const int64_t low = absl::ToUnixMillis(from), high = absl::ToUnixMillis(to);
  int64_t count = 0;
  for (const auto& [score, member] : open->second.order) {
    if (score > low && score <= high) ++count;
  }
  return count;
}

std::vector<common::v1::Event> InMemoryDeadlineStore::Outbox(int shard) {
  absl::MutexLock lock(&mu_);
  return shards_[shard].outbox;
}

}  // namespace rogatory::deadlines
