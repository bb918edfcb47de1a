#include "redis_deadline_store.h"

#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "deadline_logic.h"
#include "deadline_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/status.h"

namespace rogatory::deadlines {

using common::RedisReply;

namespace {

int64_t Ms(absl::Time t) { return absl::ToUnixMillis(t); }
// A timer's score: its due time rounded UP to the millisecond. A claim takes timers whose
// score is at most the claim's `now` in whole milliseconds; rounding down would let a claim
// in the same millisecond as a due time with a sub-millisecond part take the timer before
// it is due, and Fire (comparing exact times) would find nothing to do and the timer would
// be released unfired: lost.
int64_t TimerScore(absl::Time due) {
  const int64_t ms = absl::ToUnixMillis(due);
  return absl::FromUnixMillis(ms) < due ? ms + 1 : ms;
}

// Reads of a retention erase before the erase is retried (the request's deadlines changed
// between the read and the script every time): then UNAVAILABLE, and the relay redelivers.
constexpr int kEraseAttempts = 5;

CommitOutcome OutcomeOf(scripts::CommitResult::Outcome o) {
  using O = scripts::CommitResult::Outcome;
  switch (o) {
    case O::kOk:
      return CommitOutcome::kOk;
    case O::kReplayed:
      return CommitOutcome::kReplayed;
    case O::kConflict:
      return CommitOutcome::kConflict;
    case O::kExists:
      return CommitOutcome::kExists;
    case O::kFenced:
      return CommitOutcome::kFenced;
    case O::kDuplicate:
      return CommitOutcome::kDuplicate;
  }
  return CommitOutcome::kConflict;
}

// Deadlines read with deadline_read.lua's fields {pb, ver}: nullopt for one that is gone.
absl::StatusOr<std::vector<std::optional<StoredDeadline>>> ParseDeadlines(
    const scripts::ReadResult& read) {
  std::vector<std::optional<StoredDeadline>> out;
  out.reserve(read.size());
  for (const std::vector<std::string>& f : read) {
    if (f.size() != 2) return absl::InternalError("unexpected reply to deadline_read.lua");
    if (f[0].empty()) {
      out.emplace_back();
      continue;
    }
    ASSIGN_OR_RETURN(StoredDeadline s, ParseStoredDeadline(f[0], f[1]));
    out.emplace_back(std::move(s));
  }
  return out;
}

const std::vector<std::string>& DeadlineFields() {
  static const auto* fields = new std::vector<std::string>{"pb", "ver"};
  return *fields;
}

}  // namespace

std::string RedisDeadlineStore::Key(int shard, const std::string& suffix) {
  return scripts::Keys::Of(shard, suffix);
}

absl::StatusOr<StoredDeadline> ParseStoredDeadline(const std::string& pb, const std::string& ver) {
  StoredDeadline s;
  if (!s.deadline.ParseFromString(pb) || !absl::SimpleAtoi(ver, &s.version)) {
    return absl::DataLossError("stored deadline is unreadable");
  }
  // Written before deadlines had etags: the version is the etag.
  if (s.deadline.etag().empty()) s.deadline.set_etag(DeadlineEtag(s.version));
  return s;
}

void RedisDeadlineStore::Get(const std::string& deadline_id, GetCallback done,
                             const std::string& idempotency_key) {
  auto shard = ShardOfDeadline(deadline_id);
  if (!shard.ok()) {
    done(absl::NotFoundError("no deadline has this id"));
    return;
  }
  redis_.Command({"HMGET", scripts::Keys::Deadline(*shard, deadline_id), "pb", "ver",
                  "idem:" + idempotency_key},
                 [done, idempotency_key](absl::StatusOr<RedisReply> r) {
                   if (!r.ok()) return done(r.status());
                   auto f = common::ReplyArray(*r, "HMGET deadline");
                   if (!f.ok()) return done(f.status());
                   if ((*f)->size() != 3)
                     return done(absl::InternalError("unexpected reply to HMGET"));
                   if ((**f)[0].is_nil())
                     return done(absl::NotFoundError("no deadline has this id"));
                   auto s = ParseStoredDeadline((**f)[0].str, (**f)[1].str);
                   if (s.ok()) s->replayed = !idempotency_key.empty() && !(**f)[2].is_nil();
                   done(std::move(s));
                 });
}

absl::StatusOr<StoredDeadline> RedisDeadlineStore::GetBlocking(const std::string& deadline_id) {
  ASSIGN_OR_RETURN(int shard, ShardOfDeadline(deadline_id));
  ASSIGN_OR_RETURN(scripts::ReadResult read,
                   scripts::ReadBlocking(redis_, {shard, {deadline_id}, DeadlineFields()}));
  ASSIGN_OR_RETURN(auto deadlines, ParseDeadlines(read));
  if (deadlines.size() != 1 || !deadlines[0]) {
    return absl::NotFoundError("no deadline has this id");
  }
  return *std::move(deadlines[0]);
}

scripts::CommitCall RedisDeadlineStore::PrepareCommit(int shard,
                                                      const std::vector<DeadlineWrite>& writes,
                                                      const CommitOptions& options) const {
  scripts::CommitCall call;
  call.shard = shard;
  if (options.dedupe != nullptr) call.dedupe = *options.dedupe;
  call.claim_member = options.claim_member;
  call.claim_token = options.claim_token;
  call.idempotency_key = options.idempotency_key;
  call.parties_request_id = options.parties_request_id;
  call.parties = options.parties;
  for (const DeadlineWrite& w : writes) {
    const v1::Deadline& d = w.deadline;
    scripts::CommitWrite c;
    c.id = d.id();
    c.expected_version = w.expected_version;
    // Stored with the etag of the version written (DeadlineEtag).
    const std::string etag = DeadlineEtag(w.expected_version + 1);
    if (d.etag() == etag) {
      c.deadline_pb = d.SerializeAsString();
    } else {
      v1::Deadline stamped = d;
      stamped.set_etag(etag);
      c.deadline_pb = stamped.SerializeAsString();
    }
    c.state = static_cast<int>(d.state());
    c.due_ms = Ms(FromProtoTime(d.due_time()));
    // Only the deadline's next timer is in the shard's timer set: firing it writes the
    // deadline again, which schedules the one after it. One member a deadline instead of one
    // per reminder (memory), and the same firing order.
    const std::vector<TimerSpec> timers = TimersOf(d);
    const auto next =
        std::min_element(timers.begin(), timers.end(),
                         [](const TimerSpec& a, const TimerSpec& b) { return a.due < b.due; });
    if (next != timers.end()) {
      c.timer_member = next->member;
      c.timer_score = TimerScore(next->due);
    }
    c.request_id = d.request_id();
    c.authority = IndexedAuthority(d);
    c.instrument = static_cast<int>(d.instrument());
    c.stored_authority = w.stored_authority;
    if (w.event) c.event_pb = w.event->SerializeAsString();
    call.writes.push_back(std::move(c));
  }
  return call;
}

void RedisDeadlineStore::GetParties(const std::string& request_id, PartiesCallback done) {
  auto shard = ShardOfRequest(request_id);
  if (!shard.ok()) return done(shard.status());
  common::LoadRequestParties(redis_, scripts::Keys::Parties(*shard, request_id), std::move(done));
}

void RedisDeadlineStore::Commit(int shard, std::vector<DeadlineWrite> writes,
                                const CommitOptions& options, CommitCallback done) {
  scripts::CommitCall call = PrepareCommit(shard, writes, options);
  std::vector<int64_t> scheduled = ScheduledTimers(call);
  scripts::Commit(redis_, call,
                  [this, shard, scheduled = std::move(scheduled),
                   done](absl::StatusOr<scripts::CommitResult> r) {
                    if (!r.ok()) return done(r.status());
                    if (r->outcome == scripts::CommitResult::Outcome::kOk) {
                      for (int64_t due : scheduled)
                        TimerScheduled(shard, absl::FromUnixMillis(due));
                    }
                    done(OutcomeOf(r->outcome));
                  });
}

std::vector<int64_t> RedisDeadlineStore::ScheduledTimers(const scripts::CommitCall& call) {
  std::vector<int64_t> out;
  if (!call.claim_member.empty()) return out;
  for (const scripts::CommitWrite& w : call.writes) {
    if (!w.timer_member.empty()) out.push_back(w.timer_score);
  }
  return out;
}

absl::StatusOr<CommitOutcome> RedisDeadlineStore::CommitBlocking(int shard,
                                                                 std::vector<DeadlineWrite> writes,
                                                                 const CommitOptions& options) {
  const scripts::CommitCall call = PrepareCommit(shard, writes, options);
  ASSIGN_OR_RETURN(scripts::CommitResult r, scripts::CommitBlocking(redis_, call));
  if (r.outcome == scripts::CommitResult::Outcome::kOk) {
    for (int64_t due : ScheduledTimers(call)) TimerScheduled(shard, absl::FromUnixMillis(due));
  }
  return OutcomeOf(r.outcome);
}

void RedisDeadlineStore::ListIndex(int shard, const std::string& index, absl::Time due_before,
                                   int limit, ListCallback done) {
  // The index first, then its deadlines (the script reading them is given their keys).
  redis_.Command({"ZRANGEBYSCORE", Key(shard, index), "-inf", absl::StrCat(Ms(due_before)), "LIMIT",
                  "0", absl::StrCat(limit)},
                 [this, shard, done](absl::StatusOr<RedisReply> r) {
                   if (!r.ok()) return done(r.status());
                   auto ids = common::ReplyStrings(*r, "ZRANGEBYSCORE deadline index");
                   if (!ids.ok()) return done(ids.status());
                   scripts::Read(redis_, {shard, *std::move(ids), DeadlineFields()},
                                 [done](absl::StatusOr<scripts::ReadResult> read) {
                                   if (!read.ok()) return done(read.status());
                                   auto deadlines = ParseDeadlines(*read);
                                   if (!deadlines.ok()) return done(deadlines.status());
                                   std::vector<StoredDeadline> out;
                                   for (auto& d : *deadlines) {
                                     if (d) out.push_back(*std::move(d));
                                   }
                                   done(std::move(out));
                                 });
                 });
}

// The page script is given, as a hint, the deadlines the same page (shard, index, bound,
// size, cursor) listed last time on this replica: when it lists only those, it reads them
// too (one round trip); else they are read after it, as their ids are data.
void RedisDeadlineStore::ListIndexPage(int shard, const std::string& index, int64_t max_score,
                                       int limit, const std::optional<IndexCursor>& after,
                                       PageCallback done) {
  scripts::PageCall call;
  call.shard = shard;
  call.index = index;
  call.max_score = max_score;
  call.limit = limit;
  if (after) call.after = std::make_pair(after->score, after->id);
  call.fields = DeadlineFields();
  std::string hint_key = absl::StrCat(shard, "|", index, "|", max_score, "|", limit, "|",
                                      after ? absl::StrCat(after->score, "|", after->id) : "-");
  {
    absl::MutexLock lock(&hints_mu_);
    auto it = page_hints_.find(hint_key);
    if (it != page_hints_.end()) call.hint = it->second;
  }
  scripts::Page(
      redis_, call,
      [this, shard, hint_key = std::move(hint_key),
       done](absl::StatusOr<scripts::PageResult> page) {
        if (!page.ok()) return done(page.status());
        std::vector<std::string> ids;
        for (const auto& e : page->entries) ids.push_back(e.id);
        {
          absl::MutexLock lock(&hints_mu_);
          if (page_hints_.size() >= kPageHints) page_hints_.clear();
          page_hints_[hint_key] = ids;
        }
        auto result = std::make_shared<scripts::PageResult>(*std::move(page));
        auto finish = [result, done](absl::StatusOr<scripts::ReadResult> read) {
          if (!read.ok()) return done(read.status());
          auto deadlines = ParseDeadlines(*read);
          if (!deadlines.ok()) return done(deadlines.status());
          IndexPage out;
          out.more = result->more;
          for (size_t i = 0; i < result->entries.size(); ++i) {
            IndexEntry e;
            e.score = result->entries[i].score;
            e.id = std::move(result->entries[i].id);
            e.deadline = std::move((*deadlines)[i]);
            out.entries.push_back(std::move(e));
          }
          done(std::move(out));
        };
        if (result->read.has_value()) return finish(*std::move(result->read));
        scripts::Read(redis_, {shard, std::move(ids), DeadlineFields()}, std::move(finish));
      });
}

absl::StatusOr<std::vector<ClaimedTimer>> RedisDeadlineStore::Claim(int shard, absl::Time now,
                                                                    absl::Duration lease,
                                                                    int limit) {
  ASSIGN_OR_RETURN(
      std::vector<scripts::ClaimedMember> claimed,
      scripts::ClaimBlocking(redis_, {shard, Ms(now), absl::ToInt64Milliseconds(lease), limit}));
  // Then the claimed timers' deadlines, each read once (the claim keeps them claimed: a
  // change in between fences or conflicts their commit, as after any read).
  std::vector<std::string> ids;
  std::map<std::string, size_t> index_of;
  for (const scripts::ClaimedMember& m : claimed) {
    std::string id = m.member.substr(0, m.member.find('|'));
    if (index_of.emplace(id, ids.size()).second) ids.push_back(std::move(id));
  }
  ASSIGN_OR_RETURN(scripts::ReadResult read,
                   scripts::ReadBlocking(redis_, {shard, ids, DeadlineFields()}));
  // An unreadable deadline is handled as a gone one, as before (its timer is released).
  std::vector<std::optional<StoredDeadline>> deadlines;
  for (const std::vector<std::string>& f : read) {
    auto d = f.size() == 2 && !f[0].empty()
                 ? ParseStoredDeadline(f[0], f[1])
                 : absl::StatusOr<StoredDeadline>(absl::NotFoundError(""));
    deadlines.push_back(d.ok() ? std::optional<StoredDeadline>(*std::move(d)) : std::nullopt);
  }
  std::vector<ClaimedTimer> out;
  for (scripts::ClaimedMember& m : claimed) {
    ClaimedTimer t;
    t.deadline = deadlines[index_of[m.member.substr(0, m.member.find('|'))]];
    t.member = std::move(m.member);
    t.token = std::move(m.token);
    t.due = absl::FromUnixMillis(m.due_ms);
    t.takeover = m.takeover;
    out.push_back(std::move(t));
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> RedisDeadlineStore::Stats(int shard) {
  ASSIGN_OR_RETURN(RedisReply r, common::RunRedisCommand(redis_, {"HGETALL", Key(shard, "stats")}));
  ASSIGN_OR_RETURN(auto fields, common::ReplyFields(r, "HGETALL deadline stats"));
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& [field, value] : fields) {
    int64_t v = 0;
    absl::SimpleAtoi(value, &v);
    out.emplace_back(field, v);
  }
  return out;
}

// One ZCOUNT of the shard's open index, scored by due time in ms.
absl::StatusOr<int64_t> RedisDeadlineStore::CountOpenDue(int shard, absl::Time from,
                                                         absl::Time to) {
  ASSIGN_OR_RETURN(RedisReply r,
                   common::RunRedisCommand(redis_, {"ZCOUNT", Key(shard, "open"),
                                                    absl::StrCat("(", absl::ToUnixMillis(from)),
                                                    absl::StrCat(absl::ToUnixMillis(to))}));
  return common::ReplyInteger(r, "ZCOUNT dl:open");
}

absl::StatusOr<std::optional<absl::Time>> RedisDeadlineStore::NextDue(int shard) {
  // Both commands in flight at once: one round trip.
  struct Pending {
    absl::Mutex mu;
    int left ABSL_GUARDED_BY(mu) = 2;
    absl::Status status ABSL_GUARDED_BY(mu);
    std::optional<int64_t> earliest ABSL_GUARDED_BY(mu);
  };
  auto pending = std::make_shared<Pending>();
  for (const char* set : {"timers", "claims"}) {
    redis_.Command({"ZRANGE", Key(shard, set), "0", "0", "WITHSCORES"},
                   [pending](absl::StatusOr<RedisReply> r) {
                     absl::MutexLock lock(&pending->mu);
                     --pending->left;
                     if (!r.ok()) {
                       pending->status = r.status();
                       return;
                     }
                     auto first = common::ReplyStrings(*r, "ZRANGE deadline timers");
                     if (!first.ok()) {
                       pending->status = first.status();
                       return;
                     }
                     int64_t score = 0;
                     if (first->size() == 2 && absl::SimpleAtoi((*first)[1], &score)) {
                       if (!pending->earliest || score < *pending->earliest) {
                         pending->earliest = score;
                       }
                     }
                   });
  }
  absl::MutexLock lock(&pending->mu);
  pending->mu.Await(absl::Condition(
      +[](Pending* p) ABSL_NO_THREAD_SAFETY_ANALYSIS { return p->left == 0; }, pending.get()));
  if (!pending->status.ok()) return pending->status;
  if (!pending->earliest) return std::nullopt;
  return absl::FromUnixMillis(*pending->earliest);
}

// Retention: the request's deadlines and the authorities they are indexed under are read
// first; the erase script re-checks both and answers kRetry when they changed in between.
void RedisDeadlineStore::EraseRequest(int shard, const std::string& request_id,
                                      const common::Dedupe& dedupe, CommitCallback done) {
  EraseAttempt(shard, request_id, dedupe, 0, std::move(done));
}

void RedisDeadlineStore::EraseAttempt(int shard, std::string request_id, common::Dedupe dedupe,
                                      int attempt, CommitCallback done) {
  redis_.Command(
      {"ZRANGE", scripts::Keys::ByRequest(shard, request_id), "0", "-1"},
      [this, shard, request_id, dedupe, attempt, done](absl::StatusOr<RedisReply> r) {
        if (!r.ok()) return done(r.status());
        auto ids = common::ReplyStrings(*r, "ZRANGE deadlines of a request");
        if (!ids.ok()) return done(ids.status());
        auto erase = [this, shard, request_id, dedupe, attempt,
                      done](std::vector<scripts::EraseCall::Deadline> deadlines) {
          scripts::Erase(
              redis_, {shard, request_id, dedupe, std::move(deadlines)},
              [this, shard, request_id, dedupe, attempt,
               done](absl::StatusOr<scripts::EraseResult> e) {
                if (!e.ok()) return done(e.status());
                switch (*e) {
                  case scripts::EraseResult::kHandled:
                    return done(CommitOutcome::kOk);
                  case scripts::EraseResult::kDuplicate:
                    return done(CommitOutcome::kDuplicate);
                  case scripts::EraseResult::kRetry:
                    if (attempt + 1 < kEraseAttempts) {
                      return EraseAttempt(shard, request_id, dedupe, attempt + 1, done);
                    }
                    return done(absl::UnavailableError("deadlines changed concurrently"));
                }
              });
        };
        if (ids->empty()) return erase({});
        auto shared_ids = std::make_shared<std::vector<std::string>>(*std::move(ids));
        scripts::Read(redis_, {shard, *shared_ids, {"authority"}},
                      [shared_ids, erase, done](absl::StatusOr<scripts::ReadResult> read) {
                        if (!read.ok()) return done(read.status());
                        std::vector<scripts::EraseCall::Deadline> deadlines;
                        for (size_t i = 0; i < shared_ids->size(); ++i) {
                          deadlines.push_back({(*shared_ids)[i], (*read)[i][0]});
                        }
                        erase(std::move(deadlines));
                      });
      });
}

}  // namespace rogatory::deadlines
