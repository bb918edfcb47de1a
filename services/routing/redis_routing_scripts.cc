#include "redis_routing_scripts.h"

#include <algorithm>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/time_util.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/routing/lua_scripts.h"

namespace rogatory::routing::internal {
namespace {

using common::LuaScript;
using common::RedisReply;
using google::protobuf::util::TimeUtil;

constexpr int64_t kNoDue = 9000000000000;

template <const std::string_view& kSource>
const LuaScript& Script() {
  static const LuaScript* s = new LuaScript(std::string(kSource));
  return *s;
}

std::string Str(int64_t v) { return absl::StrCat(v); }

// Runs several commands at once (one round trip: the client pipelines them) and answers
// their replies in order, or the first error.
void CommandAll(common::RedisClient& redis, std::vector<std::vector<std::string>> commands,
                StoreCallback<std::vector<RedisReply>> done) {
  struct Run {
    absl::Mutex mu;
    std::vector<RedisReply> replies;
    absl::Status error;
    size_t pending = 0;
    StoreCallback<std::vector<RedisReply>> done;
  };
  if (commands.empty()) return done(std::vector<RedisReply>());
  auto run = std::make_shared<Run>();
  run->replies.resize(commands.size());
  run->pending = commands.size();
  run->done = std::move(done);
  for (size_t i = 0; i < commands.size(); ++i) {
    redis.Command(std::move(commands[i]), [run, i](absl::StatusOr<RedisReply> r) {
      bool last;
      {
        absl::MutexLock lock(&run->mu);
        if (!r.ok()) {
          if (run->error.ok()) run->error = r.status();
        } else {
          run->replies[i] = std::move(*r);
        }
        last = --run->pending == 0;
      }
      if (!last) return;
      if (!run->error.ok()) return run->done(run->error);
      run->done(std::move(run->replies));
    });
  }
}

// The first word of a script's array reply.
absl::StatusOr<std::string> Word(const RedisReply& r, absl::string_view what) {
  auto a = common::ReplyArray(r, what);
  if (!a.ok()) return a.status();
  if ((*a)->empty()) return absl::InternalError(absl::StrCat(what, ": empty reply"));
  return common::ReplyString((**a)[0], what);
}

// A receiver script's reply: {'duplicate'}, {'retry'} or {'handled', ...}.
void ReceiverReply(absl::StatusOr<RedisReply> r, absl::string_view what,
                   const StoreCallback<Step>& done) {
  if (!r.ok()) return done(r.status());
  auto w = Word(*r, what);
  if (!w.ok()) return done(w.status());
  if (*w == "duplicate") return done(Step::kDuplicate);
  if (*w == "retry") return done(Step::kRetry);
  if (*w == "handled") return done(Step::kDone);
  done(absl::InternalError(absl::StrCat(what, ": unexpected reply")));
}

void AddParties(std::vector<std::string>& args, const PartiesValues& parties) {
  args.insert(args.end(), parties.begin(), parties.end());
}

LeaseRefusal RefusalOf(const std::string& w) {
  if (w == "notfound") return LeaseRefusal::kNotFound;
  if (w == "notholder") return LeaseRefusal::kNotHolder;
  if (w == "stale") return LeaseRefusal::kStale;
  if (w == "expired") return LeaseRefusal::kExpired;
  if (w == "conflict") return LeaseRefusal::kConflict;
  return LeaseRefusal::kNone;
}

// {word, fields[, request done]} or a refusal word.
void LeaseReply(absl::StatusOr<RedisReply> r, absl::string_view what,
                const std::vector<std::string>& outcomes, const StoreCallback<LeaseResult>& done) {
  if (!r.ok()) return done(r.status());
  auto w = Word(*r, what);
  if (!w.ok()) return done(w.status());
  LeaseResult out;
  if (*w == "retry") {
    out.retry = true;
    return done(std::move(out));
  }
  out.refusal = RefusalOf(*w);
  if (out.refusal != LeaseRefusal::kNone) return done(std::move(out));
  if (std::find(outcomes.begin(), outcomes.end(), *w) == outcomes.end()) {
    return done(absl::InternalError(absl::StrCat(what, ": unexpected reply")));
  }
  const auto& e = r->elements;
  if (e.size() < 2) return done(absl::InternalError(absl::StrCat(what, ": short reply")));
  auto fields = common::ReplyFields(e[1], what);
  if (!fields.ok()) return done(fields.status());
  out.outcome = *w;
  out.job = std::move(*fields);
  if (e.size() >= 3) {
    auto d = common::ReplyInteger(e[2], what);
    if (!d.ok()) return done(d.status());
    out.request_done = *d == 1;
  }
  done(std::move(out));
}

int64_t IntField(const JobFields& m, const std::string& k) {
  int64_t v = 0;
  auto it = m.find(k);
  if (it != m.end()) (void)absl::SimpleAtoi(it->second, &v);
  return v;
}
std::string StrField(const JobFields& m, const std::string& k) {
  auto it = m.find(k);
  return it == m.end() ? "" : it->second;
}
google::protobuf::Timestamp Ts(int64_t ms) { return TimeUtil::MillisecondsToTimestamp(ms); }

}  // namespace

ShardKeys::ShardKeys(int shard)
    : shard_(shard), prefix_(absl::StrCat(common::Sharding::Prefix(shard), "rt:")) {}
std::string ShardKeys::Decision(const std::string& r) const { return prefix_ + "dec:" + r; }
std::string ShardKeys::Sequence(const std::string& r) const { return prefix_ + "seq:" + r; }
std::string ShardKeys::Documents(const std::string& r) const { return prefix_ + "docs:" + r; }
std::string ShardKeys::Deadlines(const std::string& r) const { return prefix_ + "dl:" + r; }
std::string ShardKeys::JobsOf(const std::string& r) const { return prefix_ + "jobs:" + r; }
std::string ShardKeys::Parties(const std::string& r) const { return prefix_ + "parties:" + r; }
std::string ShardKeys::Job(const std::string& j) const { return prefix_ + "job:" + j; }
std::string ShardKeys::Queue(const std::string& p) const { return prefix_ + "q:" + p; }
std::string ShardKeys::QueueByAge(const std::string& p) const { return prefix_ + "qa:" + p; }
std::string ShardKeys::Held(const std::string& h) const { return prefix_ + "held:" + h; }
std::string ShardKeys::Pairs() const { return prefix_ + "pairs"; }
std::string ShardKeys::Leases() const { return prefix_ + "leases"; }
std::string ShardKeys::Dead() const { return prefix_ + "dead"; }
std::string ShardKeys::Unroutable() const { return prefix_ + "unroutable"; }
std::string ShardKeys::Outbox() const { return common::EventKeys::Outbox(shard_, "routing"); }

std::string PairOf(const std::string& source, const std::string& target) {
  return absl::AsciiStrToLower(absl::StrCat(source, ">", target));
}

v1::TranslationJob JobFromFields(const std::string& id, const JobFields& m) {
  v1::TranslationJob j;
  j.set_id(id);
  j.set_request_id(StrField(m, "rid"));
  j.set_document_id(StrField(m, "doc"));
  j.set_source_language(StrField(m, "src"));
  j.set_target_language(StrField(m, "tgt"));
  j.set_status(static_cast<v1::TranslationJobStatus>(IntField(m, "status")));
  const int64_t due = IntField(m, "due");
  if (due > 0 && due < kNoDue) *j.mutable_due_time() = Ts(due);
  j.set_urgency(static_cast<common::v1::Urgency>(IntField(m, "urg")));
  j.set_attempts(static_cast<int32_t>(IntField(m, "attempts")));
  j.set_lease_token(IntField(m, "token"));
  if (j.status() == v1::TRANSLATION_JOB_STATUS_CLAIMED) {
    j.set_claimed_by(StrField(m, "by"));
    *j.mutable_lease_expire_time() = Ts(IntField(m, "lease_exp"));
  }
  j.set_translated_document_id(StrField(m, "tdoc"));
  j.set_translated_document_sha256(StrField(m, "tsha"));
  j.set_failure_code(StrField(m, "fcode"));
  *j.mutable_create_time() = Ts(IntField(m, "created"));
  *j.mutable_update_time() = Ts(IntField(m, "updated"));
  return j;
}

absl::Status LeaseError(LeaseRefusal refusal) {
  switch (refusal) {
    case LeaseRefusal::kNotFound:
    // Another translator's job is answered like a missing one: a translator reaches only
    // the jobs it holds, and must not learn that a job id exists.
    case LeaseRefusal::kNotHolder:
      return absl::NotFoundError("no translation job has that id");
    case LeaseRefusal::kStale:
      return absl::FailedPreconditionError(
          "the lease token is stale: the job is no longer held under it");
    case LeaseRefusal::kExpired:
      return absl::FailedPreconditionError("the lease expired; the job returns to its queue");
    case LeaseRefusal::kConflict:
      return absl::AlreadyExistsError(
          "the job was completed under this token with another translated document");
    case LeaseRefusal::kNone:
      break;
  }
  return absl::InternalError("no lease refusal");
}

// ---- Plain reads.

void ReadJobIds(common::RedisClient& redis, const ShardKeys& keys, const std::string& request_id,
                StoreCallback<std::vector<std::string>> done) {
  redis.Command({"SMEMBERS", keys.JobsOf(request_id)}, [done](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return done(r.status());
    done(common::ReplyStrings(*r, "SMEMBERS jobs"));
  });
}

void ReadJobRows(common::RedisClient& redis, const ShardKeys& keys,
                 const std::vector<std::string>& job_ids, StoreCallback<std::vector<JobRow>> done) {
  std::vector<std::vector<std::string>> commands;
  for (const auto& id : job_ids) {
    commands.push_back({"HMGET", keys.Job(id), "rid", "doc", "src", "tgt", "tdoc", "fcode",
                        "status", "token", "by"});
  }
  CommandAll(redis, std::move(commands),
             [job_ids, done](absl::StatusOr<std::vector<RedisReply>> replies) {
               if (!replies.ok()) return done(replies.status());
               std::vector<JobRow> rows;
               for (size_t i = 0; i < job_ids.size(); ++i) {
                 const RedisReply& r = (*replies)[i];
                 auto a = common::ReplyArray(r, "HMGET job");
                 if (!a.ok()) return done(a.status());
                 if ((*a)->size() != 9) return done(absl::InternalError("HMGET job: short reply"));
                 auto v = common::ReplyStrings(r, "HMGET job");
                 if (!v.ok()) return done(v.status());
                 JobRow row;
                 row.id = job_ids[i];
                 row.exists = !(**a)[0].is_nil();
                 const auto& s = *v;
                 row.request_id = s[0];
                 row.document = s[1];
                 row.source = s[2];
                 row.target = s[3];
                 row.translated_document = s[4];
                 row.failure_code = s[5];
                 row.status = s[6];
                 row.token = s[7];
                 row.holder = s[8];
                 rows.push_back(std::move(row));
               }
               done(std::move(rows));
             });
}

void ReadDocuments(common::RedisClient& redis, const ShardKeys& keys, const std::string& request_id,
                   StoreCallback<std::map<std::string, std::string>> done) {
  redis.Command({"HGETALL", keys.Documents(request_id)}, [done](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return done(r.status());
    done(common::ReplyFields(*r, "HGETALL docs"));
  });
}

void ReadDecisionFields(common::RedisClient& redis, const ShardKeys& keys,
                        const std::string& request_id, std::vector<std::string> fields,
                        StoreCallback<std::vector<std::string>> done) {
  std::vector<std::string> command = {"HMGET", keys.Decision(request_id)};
  const size_t n = fields.size();
  command.insert(command.end(), fields.begin(), fields.end());
  redis.Command(std::move(command), [done, n](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return done(r.status());
    auto v = common::ReplyStrings(*r, "HMGET dec");
    if (v.ok() && v->size() != n) return done(absl::InternalError("HMGET dec: short reply"));
    done(std::move(v));
  });
}

void ReadCompletionContext(common::RedisClient& redis, const ShardKeys& keys,
                           const std::string& request_id, StoreCallback<CompletionContext> done) {
  CommandAll(redis,
             {{"SMEMBERS", keys.JobsOf(request_id)}, {"HGET", keys.Decision(request_id), "fwd"}},
             [done](absl::StatusOr<std::vector<RedisReply>> replies) {
               if (!replies.ok()) return done(replies.status());
               auto ids = common::ReplyStrings((*replies)[0], "SMEMBERS jobs");
               if (!ids.ok()) return done(ids.status());
               auto fwd = common::ReplyOptionalString((*replies)[1], "HGET dec fwd");
               if (!fwd.ok()) return done(fwd.status());
               done(CompletionContext{std::move(*ids), fwd->value_or("")});
             });
}

void ReadPairs(common::RedisClient& redis, const ShardKeys& keys,
               StoreCallback<std::vector<std::string>> done) {
  redis.Command({"SMEMBERS", keys.Pairs()}, [done](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return done(r.status());
    done(common::ReplyStrings(*r, "SMEMBERS pairs"));
  });
}

void ReadDueLeases(common::RedisClient& redis, const ShardKeys& keys, int64_t now_ms, int limit,
                   StoreCallback<std::vector<std::string>> done) {
  redis.Command({"ZRANGEBYSCORE", keys.Leases(), "-inf", Str(now_ms), "LIMIT", "0", Str(limit)},
                [done](absl::StatusOr<RedisReply> r) {
                  if (!r.ok()) return done(r.status());
                  done(common::ReplyStrings(*r, "ZRANGEBYSCORE leases"));
                });
}

// ---- Receiver scripts.

void RunDecide(common::RedisClient& redis, const ShardKeys& keys, const DecideCall& c,
               StoreCallback<Step> done) {
  const std::string& rid = c.request_id;
  std::vector<std::string> k = {c.seen_key,         keys.Parties(rid),   keys.Decision(rid),
                                keys.Sequence(rid), keys.Outbox(),       keys.Unroutable(),
                                keys.JobsOf(rid),   keys.Documents(rid), keys.Pairs()};
  std::vector<std::string> a = {c.retention_ms};
  AddParties(a, c.parties);
  a.insert(a.end(), {Str(c.now_ms), rid, c.decision, c.need ? "1" : "0", c.source, c.target,
                     Str(c.urgency), c.unroutable ? "1" : "0", c.event_template,
                     Str(c.forward_status), c.decided_with_status, c.decided_without_status,
                     Str(c.existing.size()), Str(c.create.size()), Str(c.documents.size())});
  for (const auto& j : c.existing) {
    k.insert(k.end(), {keys.Job(j.id), keys.Queue(j.pair), keys.QueueByAge(j.pair)});
    a.insert(a.end(), {j.id, j.status, j.token, j.cancel_event});
  }
  const std::string pair = PairOf(c.source, c.target);
  for (const auto& j : c.create) {
    k.insert(k.end(), {keys.Job(j.id), keys.Queue(pair), keys.QueueByAge(pair)});
    a.insert(a.end(), {j.id, j.document, j.queued_event});
  }
  for (const auto& [doc, value] : c.documents) a.insert(a.end(), {doc, value});
  redis.Eval(Script<lua::kDecide>(), std::move(k), std::move(a),
             [done](absl::StatusOr<RedisReply> r) { ReceiverReply(std::move(r), "decide", done); });
}

void RunAddDocument(common::RedisClient& redis, const ShardKeys& keys, const AddDocumentCall& c,
                    StoreCallback<Step> done) {
  const std::string& rid = c.request_id;
  const std::string pair = PairOf(c.read_source, c.read_target);
  std::vector<std::string> k = {c.seen_key,         keys.Parties(rid),    keys.Decision(rid),
                                keys.Sequence(rid), keys.Outbox(),        keys.Documents(rid),
                                keys.JobsOf(rid),   keys.Pairs(),         keys.Job(c.job_id),
                                keys.Queue(pair),   keys.QueueByAge(pair)};
  std::vector<std::string> a = {c.retention_ms};
  AddParties(a, c.parties);
  a.insert(a.end(), {Str(c.now_ms), rid, c.document, c.language, c.sha256, c.read_source,
                     c.read_target, c.job_id, c.queued_event});
  redis.Eval(
      Script<lua::kAddDocument>(), std::move(k), std::move(a),
      [done](absl::StatusOr<RedisReply> r) { ReceiverReply(std::move(r), "add_document", done); });
}

void RunUpdateDeadline(common::RedisClient& redis, const ShardKeys& keys,
                       const UpdateDeadlineCall& c, StoreCallback<Step> done) {
  const std::string& rid = c.request_id;
  std::vector<std::string> k = {c.seen_key,          keys.Parties(rid), keys.Decision(rid),
                                keys.Deadlines(rid), keys.JobsOf(rid),  keys.Pairs()};
  std::vector<std::string> a = {c.retention_ms};
  AddParties(a, c.parties);
  a.insert(a.end(), {c.deadline_id, c.due_ms ? Str(*c.due_ms) : "", Str(c.jobs.size())});
  for (const auto& j : c.jobs) {
    const std::string pair = PairOf(j.source, j.target);
    k.insert(k.end(),
             {keys.Job(j.id), keys.Queue(pair), keys.QueueByAge(pair), keys.Held(j.holder)});
    a.insert(a.end(), {j.id, j.status, j.token});
  }
  redis.Eval(Script<lua::kUpdateDeadline>(), std::move(k), std::move(a),
             [done](absl::StatusOr<RedisReply> r) {
               ReceiverReply(std::move(r), "update_deadline", done);
             });
}

void RunEndRequest(common::RedisClient& redis, const ShardKeys& keys, const EndRequestCall& c,
                   StoreCallback<Step> done) {
  const std::string& rid = c.request_id;
  std::vector<std::string> k = {c.seen_key,         keys.Parties(rid), keys.Decision(rid),
                                keys.Sequence(rid), keys.Outbox(),     keys.Unroutable(),
                                keys.JobsOf(rid),   keys.Leases()};
  std::vector<std::string> a = {c.retention_ms};
  AddParties(a, c.parties);
  a.insert(a.end(), {Str(c.now_ms), rid, Str(c.jobs.size())});
  for (size_t i = 0; i < c.jobs.size(); ++i) {
    const JobRow& j = c.jobs[i];
    const std::string pair = PairOf(j.source, j.target);
    k.insert(k.end(),
             {keys.Job(j.id), keys.Queue(pair), keys.QueueByAge(pair), keys.Held(j.holder)});
    a.insert(a.end(), {j.id, j.status, j.token, c.cancel_events[i]});
  }
  redis.Eval(
      Script<lua::kEndRequest>(), std::move(k), std::move(a),
      [done](absl::StatusOr<RedisReply> r) { ReceiverReply(std::move(r), "end_request", done); });
}

void RunEraseRequest(common::RedisClient& redis, const ShardKeys& keys, const EraseRequestCall& c,
                     StoreCallback<Step> done) {
  const std::string& rid = c.request_id;
  std::vector<std::string> k = {c.seen_key,          keys.Unroutable(),   keys.Leases(),
                                keys.Dead(),         keys.Decision(rid),  keys.Sequence(rid),
                                keys.Documents(rid), keys.Deadlines(rid), keys.JobsOf(rid),
                                keys.Parties(rid)};
  std::vector<std::string> a = {c.retention_ms, rid, Str(c.jobs.size())};
  for (const auto& j : c.jobs) {
    const std::string pair = PairOf(j.source, j.target);
    k.insert(k.end(),
             {keys.Job(j.id), keys.Queue(pair), keys.QueueByAge(pair), keys.Held(j.holder)});
    a.insert(a.end(), {j.id, j.holder});
  }
  redis.Eval(
      Script<lua::kEraseRequest>(), std::move(k), std::move(a),
      [done](absl::StatusOr<RedisReply> r) { ReceiverReply(std::move(r), "erase_request", done); });
}

// ---- Job scripts.

void RunPeekQueues(common::RedisClient& redis, const ShardKeys& keys,
                   const std::vector<std::string>& pairs,
                   StoreCallback<std::optional<QueueHead>> done) {
  std::vector<std::string> k;
  for (const auto& p : pairs) k.push_back(keys.Queue(p));
  redis.Eval(Script<lua::kPeekQueues>(), std::move(k), {}, [done](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) return done(r.status());
    auto v = common::ReplyStrings(*r, "peek_queues");
    if (!v.ok()) return done(v.status());
    if (v->empty()) return done(std::optional<QueueHead>());
    if (v->size() != 2) return done(absl::InternalError("peek_queues: unexpected reply"));
    QueueHead head;
    if (!absl::SimpleAtod((*v)[0], &head.score)) {
      return done(absl::InternalError("peek_queues: score is not a number"));
    }
    head.job_id = (*v)[1];
    done(std::optional<QueueHead>(std::move(head)));
  });
}

void RunClaim(common::RedisClient& redis, const ShardKeys& keys, const ClaimCall& c,
              StoreCallback<ClaimResult> done) {
  std::vector<std::string> k = {keys.Job(c.job_id),          keys.Queue(c.pair),
                                keys.QueueByAge(c.pair),     keys.Leases(),
                                keys.Held(c.claimer),        keys.Decision(c.request_id),
                                keys.Sequence(c.request_id), keys.Outbox(),
                                keys.JobsOf(c.request_id)};
  std::vector<std::string> a = {c.job_id,        c.request_id, c.token,        Str(c.now_ms),
                                Str(c.lease_ms), c.claimer,    c.claimed_event};
  redis.Eval(Script<lua::kClaim>(), std::move(k), std::move(a),
             [done](absl::StatusOr<RedisReply> r) {
               if (!r.ok()) return done(r.status());
               auto w = Word(*r, "claim");
               if (!w.ok()) return done(w.status());
               ClaimResult out;
               if (*w == "retry") {
                 out.retry = true;
                 return done(std::move(out));
               }
               if (*w != "claimed" || r->elements.size() != 4) {
                 return done(absl::InternalError("claim: unexpected reply"));
               }
               auto fields = common::ReplyFields(r->elements[1], "claim");
               if (!fields.ok()) return done(fields.status());
               out.job = std::move(*fields);
               auto ids = common::ReplyStrings(r->elements[2], "claim jobs");
               if (!ids.ok()) return done(ids.status());
               auto fwd = common::ReplyString(r->elements[3], "claim fwd");
               if (!fwd.ok()) return done(fwd.status());
               out.context = CompletionContext{std::move(*ids), std::move(*fwd)};
               done(std::move(out));
             });
}

void RunHeartbeat(common::RedisClient& redis, const ShardKeys& keys, const HeartbeatCall& c,
                  StoreCallback<LeaseResult> done) {
  redis.Eval(Script<lua::kHeartbeat>(), {keys.Job(c.job_id), keys.Leases()},
             {c.job_id, Str(c.token), c.claimer, c.lease_ms ? Str(*c.lease_ms) : "", Str(c.now_ms)},
             [done](absl::StatusOr<RedisReply> r) {
               LeaseReply(std::move(r), "heartbeat", {"ok"}, done);
             });
}

void RunComplete(common::RedisClient& redis, const ShardKeys& keys, const CompleteCall& c,
                 StoreCallback<LeaseResult> done) {
  std::vector<std::string> k = {keys.Job(c.job_id),          keys.Leases(),
                                keys.Held(c.claimer),        keys.Decision(c.request_id),
                                keys.Sequence(c.request_id), keys.Outbox(),
                                keys.JobsOf(c.request_id)};
  std::vector<std::string> a = {c.job_id,
                                Str(c.token),
                                c.claimer,
                                c.translated_document,
                                c.sha256,
                                Str(c.now_ms),
                                c.request_id,
                                c.forward_status,
                                c.completed_with_status,
                                c.completed_without_status,
                                Str(c.request_jobs.size())};
  for (const auto& id : c.request_jobs) {
    k.push_back(keys.Job(id));
    a.push_back(id);
  }
  redis.Eval(Script<lua::kComplete>(), std::move(k), std::move(a),
             [done](absl::StatusOr<RedisReply> r) {
               LeaseReply(std::move(r), "complete", {"completed", "replayed"}, done);
             });
}

void RunFail(common::RedisClient& redis, const ShardKeys& keys, const FailCall& c,
             StoreCallback<LeaseResult> done) {
  std::vector<std::string> k = {
      keys.Job(c.job_id),          keys.Leases(), keys.Held(c.claimer), keys.Queue(c.pair),
      keys.QueueByAge(c.pair),     keys.Pairs(),  keys.Dead(),          keys.Decision(c.request_id),
      keys.Sequence(c.request_id), keys.Outbox()};
  std::vector<std::string> a = {c.job_id,
                                Str(c.token),
                                c.claimer,
                                c.failure_code,
                                c.retryable ? "1" : "0",
                                Str(c.max_attempts),
                                Str(c.now_ms),
                                c.request_id,
                                c.pair,
                                c.requeued_event,
                                c.dead_event};
  redis.Eval(Script<lua::kFail>(), std::move(k), std::move(a),
             [done](absl::StatusOr<RedisReply> r) {
               LeaseReply(std::move(r), "fail", {"requeued", "dead", "replayed"}, done);
             });
}

void RunSweep(common::RedisClient& redis, const ShardKeys& keys, const SweepCall& c,
              StoreCallback<SweepResult> done) {
  std::vector<std::string> k = {keys.Leases(), keys.Pairs(), keys.Dead(), keys.Outbox()};
  std::vector<std::string> a = {Str(c.now_ms), Str(c.max_attempts), Str(c.jobs.size())};
  for (const auto& j : c.jobs) {
    const JobRow& row = j.row;
    const std::string pair = PairOf(row.source, row.target);
    k.insert(k.end(),
             {keys.Job(row.id), keys.Held(row.holder), keys.Queue(pair), keys.QueueByAge(pair),
              keys.Decision(row.request_id), keys.Sequence(row.request_id)});
    a.insert(a.end(), {row.id, row.token, row.status, pair, j.requeued_event, j.dead_event});
  }
  redis.Eval(Script<lua::kSweepLeases>(), std::move(k), std::move(a),
             [done](absl::StatusOr<RedisReply> r) {
               if (!r.ok()) return done(r.status());
               auto a = common::ReplyArray(*r, "sweep_leases");
               if (!a.ok()) return done(a.status());
               if ((*a)->size() != 2) return done(absl::InternalError("sweep_leases: bad reply"));
               auto expired = common::ReplyInteger((**a)[0], "sweep_leases");
               auto dead = common::ReplyInteger((**a)[1], "sweep_leases");
               if (!expired.ok()) return done(expired.status());
               if (!dead.ok()) return done(dead.status());
               SweepResult out;
               out.expired = static_cast<int>(*expired);
               out.dead_lettered = static_cast<int>(*dead);
               done(out);
             });
}

// ---- Reading scripts.

void RunShardStats(common::RedisClient& redis, const ShardKeys& keys,
                   const std::vector<std::string>& pairs,
                   StoreCallback<std::optional<ShardStats>> done) {
  std::vector<std::string> k = {keys.Dead(), keys.Unroutable(), keys.Pairs()};
  std::vector<std::string> a = {Str(pairs.size())};
  for (const auto& p : pairs) {
    k.insert(k.end(), {keys.Queue(p), keys.QueueByAge(p)});
    a.push_back(p);
  }
  redis.Eval(Script<lua::kShardStats>(), std::move(k), std::move(a),
             [done](absl::StatusOr<RedisReply> r) {
               if (!r.ok()) return done(r.status());
               auto a = common::ReplyArray(*r, "shard_stats");
               if (!a.ok()) return done(a.status());
               const auto& e = **a;
               if (e.size() == 1) return done(std::optional<ShardStats>());  // {'retry'}
               if (e.size() < 2 || (e.size() - 2) % 3 != 0) {
                 return done(absl::InternalError("shard_stats: bad reply"));
               }
               ShardStats out;
               auto dead = common::ReplyInteger(e[0], "shard_stats");
               auto unroutable = common::ReplyInteger(e[1], "shard_stats");
               if (!dead.ok()) return done(dead.status());
               if (!unroutable.ok()) return done(unroutable.status());
               out.dead_letters = *dead;
               out.unroutable = *unroutable;
               for (size_t i = 2; i + 2 < e.size(); i += 3) {
                 auto pair = common::ReplyString(e[i], "shard_stats");
                 auto depth = common::ReplyInteger(e[i + 1], "shard_stats");
                 auto oldest = common::ReplyString(e[i + 2], "shard_stats");
                 if (!pair.ok()) return done(pair.status());
                 if (!depth.ok()) return done(depth.status());
                 if (!oldest.ok()) return done(oldest.status());
                 PairStats p;
                 std::vector<std::string> st = absl::StrSplit(*pair, absl::MaxSplits('>', 1));
                 p.source = st[0];
                 p.target = st.size() > 1 ? st[1] : "";
                 p.depth = *depth;
                 int64_t ms = 0;
                 if (absl::SimpleAtoi(*oldest, &ms)) p.oldest = absl::FromUnixMillis(ms);
                 out.pairs.push_back(std::move(p));
               }
               done(std::optional<ShardStats>(std::move(out)));
             });
}

void RunRequestJobs(common::RedisClient& redis, const ShardKeys& keys,
                    const std::string& request_id, const std::vector<std::string>& job_ids,
                    StoreCallback<std::optional<std::vector<v1::TranslationJob>>> done) {
  std::vector<std::string> k = {keys.JobsOf(request_id)};
  for (const auto& id : job_ids) k.push_back(keys.Job(id));
  redis.Eval(Script<lua::kRequestJobs>(), std::move(k), job_ids,
             [done](absl::StatusOr<RedisReply> r) {
               using Out = std::optional<std::vector<v1::TranslationJob>>;
               if (!r.ok()) return done(r.status());
               auto w = Word(*r, "request_jobs");
               if (!w.ok()) return done(w.status());
               if (*w == "retry") return done(Out());
               const auto& e = r->elements;
               if (*w != "jobs" || e.size() % 2 != 1) {
                 return done(absl::InternalError("request_jobs: unexpected reply"));
               }
               std::vector<v1::TranslationJob> jobs;
               for (size_t i = 1; i + 1 < e.size(); i += 2) {
                 auto id = common::ReplyString(e[i], "request_jobs");
                 auto fields = common::ReplyFields(e[i + 1], "request_jobs");
                 if (!id.ok()) return done(id.status());
                 if (!fields.ok()) return done(fields.status());
                 jobs.push_back(JobFromFields(*id, *fields));
               }
               done(Out(std::move(jobs)));
             });
}

void RunQueuePage(common::RedisClient& redis, const QueuePageCall& c,
                  StoreCallback<std::vector<PageEntry>> done) {
  if (c.indexes.empty()) return done(std::vector<PageEntry>());
  std::vector<std::string> a = {Str(c.need), c.after ? Str(c.after->score) : "",
                                c.after ? c.after->id : "", Str(c.ranges.size())};
  for (const auto& [low, high] : c.ranges) a.insert(a.end(), {Str(low), Str(high)});
  redis.Eval(Script<lua::kQueuePage>(), c.indexes, std::move(a),
             [done](absl::StatusOr<RedisReply> r) {
               if (!r.ok()) return done(r.status());
               auto a = common::ReplyArray(*r, "queue_page");
               if (!a.ok()) return done(a.status());
               const auto& e = **a;
               if (e.size() % 3 != 0) return done(absl::InternalError("queue_page: bad reply"));
               std::vector<PageEntry> out;
               for (size_t i = 0; i < e.size(); i += 3) {
                 auto id = common::ReplyString(e[i], "queue_page");
                 auto score = common::ReplyString(e[i + 1], "queue_page");
                 auto index = common::ReplyInteger(e[i + 2], "queue_page");
                 if (!id.ok()) return done(id.status());
                 if (!score.ok()) return done(score.status());
                 if (!index.ok()) return done(index.status());
                 auto s = common::ParseDecimal(*score, "queue_page");
                 if (!s.ok()) return done(s.status());
                 out.push_back(PageEntry{*id, *s, static_cast<size_t>(*index - 1)});
               }
               done(std::move(out));
             });
}

void RunListedJobs(common::RedisClient& redis, const ShardKeys& keys,
                   const std::vector<std::pair<PageEntry, std::string>>& entries,
                   StoreCallback<std::optional<std::vector<v1::TranslationJob>>> done) {
  using Out = std::optional<std::vector<v1::TranslationJob>>;
  if (entries.empty()) return done(Out(std::vector<v1::TranslationJob>()));
  std::vector<std::string> k, a;
  std::vector<std::string> ids;
  for (const auto& [entry, index] : entries) {
    k.insert(k.end(), {keys.Job(entry.job_id), index});
    a.insert(a.end(), {entry.job_id, Str(entry.score)});
    ids.push_back(entry.job_id);
  }
  redis.Eval(Script<lua::kListedJobs>(), std::move(k), std::move(a),
             [done, ids](absl::StatusOr<RedisReply> r) {
               if (!r.ok()) return done(r.status());
               auto w = Word(*r, "listed_jobs");
               if (!w.ok()) return done(w.status());
               if (*w == "retry") return done(Out());
               const auto& e = r->elements;
               if (*w != "jobs" || e.size() != ids.size() + 1) {
                 return done(absl::InternalError("listed_jobs: unexpected reply"));
               }
               std::vector<v1::TranslationJob> jobs;
               for (size_t i = 0; i < ids.size(); ++i) {
                 auto fields = common::ReplyFields(e[i + 1], "listed_jobs");
                 if (!fields.ok()) return done(fields.status());
                 jobs.push_back(JobFromFields(ids[i], *fields));
               }
               done(Out(std::move(jobs)));
             });
}

}  // namespace rogatory::routing::internal
