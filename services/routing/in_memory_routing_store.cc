#include "in_memory_routing_store.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "rogatory/common/event_builder.h"
#include "routing_event_handler.h"

namespace rogatory::routing {
namespace {

namespace cv1 = common::v1;
using google::protobuf::util::TimeUtil;

constexpr int64_t kNoDue = 9000000000000;
constexpr int64_t kBand = 10000000000000;
constexpr char kServiceActor[] = "rogatory-routing";

int64_t Ms(absl::Time t) { return absl::ToUnixMillis(t); }

// routing's events, stamped in whole milliseconds (as the Redis store's scripts keep them).
const common::EventBuilder& Events() {
  static const auto* builder = new common::EventBuilder("routing");
  return *builder;
}
std::string Lower(const std::string& s) { return absl::AsciiStrToLower(s); }
std::string PairOf(const std::string& src, const std::string& tgt) {
  return Lower(absl::StrCat(src, ">", tgt));
}

cv1::Actor ServiceActor() {
  cv1::Actor a;
  a.set_service(kServiceActor);
  return a;
}
cv1::Actor TranslatorActor(const std::string& authority) {
  cv1::Actor a;
  a.mutable_authority()->set_authority_id(authority);
  a.set_role(cv1::AUTHORITY_ROLE_TRANSLATOR);
  return a;
}

absl::Status NotFoundJob() { return absl::NotFoundError("no translation job has that id"); }

}  // namespace

InMemoryRoutingStore::InMemoryRoutingStore(common::Sharding sharding) : sharding_(sharding) {}

int64_t InMemoryRoutingStore::DueOf(const Request& r) const { return r.due.value_or(kNoDue); }

int64_t InMemoryRoutingStore::Score(const Job& j) {
  int band = 2;
  if (j.urgency == cv1::URGENCY_EMERGENCY) band = 0;
  if (j.urgency == cv1::URGENCY_URGENT) band = 1;
  return band * kBand + j.due;
}

int InMemoryRoutingStore::ShardOfJob(const std::string& job_id) const {
  auto s = sharding_.ShardOf("tj", job_id);
  return s.ok() ? *s : -1;
}

bool InMemoryRoutingStore::SeenOrMark(const common::Dedupe& dedupe) {
  return !seen_.insert(dedupe.seen_key).second;
}

void InMemoryRoutingStore::RecordParties(const std::string& rid, const common::RequestParties& p) {
  common::RequestParties& out =
      requests_[rid].parties.emplace(requests_[rid].parties.value_or(common::RequestParties()));
  auto set = [](std::string& field, const std::string& v) {
    if (!v.empty()) field = v;
  };
  set(out.issuing_authority_id, p.issuing_authority_id);
  set(out.issuing_state, p.issuing_state);
  set(out.executing_authority_id, p.executing_authority_id);
  set(out.requested_state, p.requested_state);
  set(out.notified_authority_id, p.notified_authority_id);
  if (out.issuing_authority_id.empty() && out.issuing_state.empty() &&
      out.executing_authority_id.empty() && out.requested_state.empty() &&
      out.notified_authority_id.empty()) {
    requests_[rid].parties.reset();
  }
}

void InMemoryRoutingStore::Emit(const std::string& rid, cv1::EventType type, absl::Time now,
                                const cv1::Actor& actor, const std::string& reason, int status,
                                const Job* job, const cv1::Event* payload) {
  Request& r = requests_[rid];
  cv1::Event e = r.event_template;
  common::EventBuilder::Stamp({.type = type, .at = absl::FromUnixMillis(Ms(now))}, e);
  e.set_sequence(++r.sequence);
  *e.mutable_actor() = actor;
  e.set_reason_code(reason);
  e.set_status(static_cast<cv1::RequestStatus>(status));
  if (payload) e.MergeFrom(*payload);
  if (job) {
    auto* t = e.mutable_translation_job();
    t->set_job_id(job->id);
    t->set_document_id(job->doc);
    t->set_source_language(job->src);
    t->set_target_language(job->tgt);
    t->set_translated_document_id(job->tdoc);
    t->set_failure_code(job->fcode);
  }
  events_[rid].push_back(std::move(e));
}

bool InMemoryRoutingStore::CreateJob(const std::string& rid, Request& r, const std::string& doc,
                                     absl::Time now) {
  auto shard = sharding_.ShardOf("rq", rid);
  const std::string id =
      absl::StrCat("tj-", shard.ok() ? *shard : 0, "-",
                   common::Sha1Hex(absl::StrCat(rid, "\n", doc, "\n", r.tgt)).substr(0, 26));
  if (jobs_.count(id)) return false;
  Job j;
  j.id = id;
  j.rid = rid;
  j.doc = doc;
  j.src = r.src;
  j.tgt = r.tgt;
  j.urgency = r.urgency;
  j.due = DueOf(r);
  j.created = j.updated = Ms(now);
  r.jobs.insert(id);
  pairs_.insert({shard.ok() ? *shard : 0, PairOf(j.src, j.tgt)});
  jobs_[id] = j;
  Emit(rid, cv1::EVENT_TYPE_TRANSLATION_JOB_QUEUED, now, ServiceActor(), "", 0, &jobs_[id]);
  return true;
}

v1::TranslationJob InMemoryRoutingStore::ToProto(const Job& j) const {
  v1::TranslationJob p;
  p.set_id(j.id);
  p.set_request_id(j.rid);
  p.set_document_id(j.doc);
  p.set_source_language(j.src);
  p.set_target_language(j.tgt);
  p.set_status(j.status);
  if (j.due > 0 && j.due < kNoDue) *p.mutable_due_time() = TimeUtil::MillisecondsToTimestamp(j.due);
  p.set_urgency(j.urgency);
  p.set_attempts(j.attempts);
  p.set_lease_token(j.token);
  if (j.status == v1::TRANSLATION_JOB_STATUS_CLAIMED) {
    p.set_claimed_by(j.by);
    *p.mutable_lease_expire_time() = TimeUtil::MillisecondsToTimestamp(j.lease_exp);
  }
  p.set_translated_document_id(j.tdoc);
  p.set_translated_document_sha256(j.tsha);
  p.set_failure_code(j.fcode);
  *p.mutable_create_time() = TimeUtil::MillisecondsToTimestamp(j.created);
  *p.mutable_update_time() = TimeUtil::MillisecondsToTimestamp(j.updated);
  return p;
}

absl::Status InMemoryRoutingStore::CheckLease(const Job* j, int64_t token,
                                              const std::string& claimer, absl::Time now) const {
  // Need-to-know: anyone but the last claimer is answered as for a missing job.
  if (j == nullptr || j->last_holder != claimer) return NotFoundJob();
  if (j->status != v1::TRANSLATION_JOB_STATUS_CLAIMED || j->token != token) {
    return absl::FailedPreconditionError(
        "the lease token is stale: the job is no longer held under it");
  }
  if (j->by != claimer) return NotFoundJob();
  if (j->lease_exp < Ms(now)) {
    return absl::FailedPreconditionError("the lease expired; the job returns to its queue");
  }
  return absl::OkStatus();
}

void InMemoryRoutingStore::RecordDecision(const cv1::Event& trigger,
                                          const v1::RoutingDecision& decision,
                                          cv1::RequestStatus status, const common::Dedupe& dedupe,
                                          absl::Time now, StoreCallback<Outcome> done) {
  const std::string& rid = trigger.request_id();
  {
    absl::MutexLock lock(&mu_);
    if (SeenOrMark(dedupe)) return done(Outcome::kDuplicate);
    common::RequestParties p = common::PartiesOf(trigger.request());
    if (p.executing_authority_id.empty()) {
      p.executing_authority_id = decision.competent_authority().authority_id();
    }
    if (p.notified_authority_id.empty()) {
      p.notified_authority_id = decision.notified_authority().authority_id();
    }
    RecordParties(rid, p);
    Request& r = requests_[rid];
    r.decided = true;
    r.decision = decision;
    r.need = decision.translation_required();
    r.src = trigger.request().source_language();
    r.tgt = decision.target_language();
    r.urgency = trigger.request().urgency();
    r.forward_status = static_cast<int>(ForwardStatusFor(decision));
    r.event_template =
        Events().AboutRequest({rid, trigger.trace_id(), trigger.instrument(), &trigger.request()});
    if (decision.unroutable() && !r.ended) {
      unroutable_[rid] = Ms(now);
    } else {
      unroutable_.erase(rid);
    }
    cv1::Event payload;
    auto* rd = payload.mutable_routing_decided();
    rd->set_translation_required(decision.translation_required());
    rd->set_target_language(decision.target_language());
    *rd->mutable_competent_authority() = decision.competent_authority();
    rd->set_channel(decision.channel());
    rd->set_registry_version(decision.registry_version());
    if (decision.has_central_authority()) {
      *rd->mutable_central_authority() = decision.central_authority();
    }
    rd->set_competent_authority_time_zone(decision.competent_authority_time_zone());
    if (decision.has_notified_authority()) {
      *rd->mutable_notified_authority() = decision.notified_authority();
    }
    std::string reason;
    if (decision.unroutable() && decision.reasons_size() > 0) {
      reason = absl::StrCat("UNROUTABLE_", decision.reasons(decision.reasons_size() - 1).code());
    }
    Emit(rid, cv1::EVENT_TYPE_ROUTING_DECIDED, now, ServiceActor(), reason,
         r.ended ? 0 : static_cast<int>(status), nullptr, &payload);
    for (const auto& id : r.jobs) {
      Job& j = jobs_[id];
      if (j.status == v1::TRANSLATION_JOB_STATUS_QUEUED && (!r.need || j.tgt != r.tgt)) {
        j.status = v1::TRANSLATION_JOB_STATUS_CANCELLED;
        j.updated = Ms(now);
        Emit(rid, cv1::EVENT_TYPE_TRANSLATION_JOB_CANCELLED, now, ServiceActor(), "ROUTING_CHANGED",
             0, &j);
      }
    }
    if (r.need && !r.ended) {
      for (const auto& [doc, lang] : r.documents) {
        if (Lower(lang) == Lower(r.src)) CreateJob(rid, r, doc, now);
      }
    }
  }
  done(Outcome::kHandled);
}

void InMemoryRoutingStore::AddDocument(const cv1::Event& trigger, const common::Dedupe& dedupe,
                                       absl::Time now, StoreCallback<Outcome> done) {
  const std::string& rid = trigger.request_id();
  {
    absl::MutexLock lock(&mu_);
    if (SeenOrMark(dedupe)) return done(Outcome::kDuplicate);
    RecordParties(rid, common::PartiesOf(trigger.request()));
    Request& r = requests_[rid];
    const std::string& doc = trigger.document().document_id();
    const std::string& lang = trigger.document().language();
    r.documents[doc] = lang;
    if (r.decided && r.need && !r.ended && Lower(lang) == Lower(r.src)) {
      CreateJob(rid, r, doc, now);
    }
  }
  done(Outcome::kHandled);
}

void InMemoryRoutingStore::UpdateDeadline(const cv1::Event& trigger, std::optional<absl::Time> due,
                                          const common::Dedupe& dedupe,
                                          StoreCallback<Outcome> done) {
  const std::string& rid = trigger.request_id();
  {
    absl::MutexLock lock(&mu_);
    if (SeenOrMark(dedupe)) return done(Outcome::kDuplicate);
    RecordParties(rid, common::PartiesOf(trigger.request()));
    Request& r = requests_[rid];
    const std::string& id = trigger.deadline().deadline_id();
    if (due) {
      r.deadlines[id] = Ms(*due);
    } else {
      r.deadlines.erase(id);
    }
    int64_t earliest = kNoDue;
    for (const auto& [_, ms] : r.deadlines) earliest = std::min(earliest, ms);
    r.due = earliest;
    for (const auto& jid : r.jobs) {
      Job& j = jobs_[jid];
      if (j.status == v1::TRANSLATION_JOB_STATUS_QUEUED ||
          j.status == v1::TRANSLATION_JOB_STATUS_CLAIMED) {
        if (j.status == v1::TRANSLATION_JOB_STATUS_QUEUED && j.due != earliest) {
          pairs_.insert({ShardOfJob(jid), PairOf(j.src, j.tgt)});
        }
        j.due = earliest;
      }
    }
  }
  done(Outcome::kHandled);
}

void InMemoryRoutingStore::EndRequest(const cv1::Event& trigger, const common::Dedupe& dedupe,
                                      absl::Time now, StoreCallback<Outcome> done) {
  const std::string& rid = trigger.request_id();
  const std::string reason = absl::StrCat(
      "REQUEST_",
      cv1::EventType_Name(trigger.type()).substr(std::string("EVENT_TYPE_REQUEST_").size()));
  {
    absl::MutexLock lock(&mu_);
    if (SeenOrMark(dedupe)) return done(Outcome::kDuplicate);
    RecordParties(rid, common::PartiesOf(trigger.request()));
    Request& r = requests_[rid];
    r.ended = true;
    unroutable_.erase(rid);
    for (const auto& jid : r.jobs) {
      Job& j = jobs_[jid];
      if (j.status == v1::TRANSLATION_JOB_STATUS_QUEUED ||
          j.status == v1::TRANSLATION_JOB_STATUS_CLAIMED) {
        j.status = v1::TRANSLATION_JOB_STATUS_CANCELLED;
        j.updated = Ms(now);
        Emit(rid, cv1::EVENT_TYPE_TRANSLATION_JOB_CANCELLED, now, ServiceActor(), reason, 0, &j);
      }
    }
  }
  done(Outcome::kHandled);
}

void InMemoryRoutingStore::EraseRequest(const cv1::Event& trigger, const common::Dedupe& dedupe,
                                        absl::Time, StoreCallback<Outcome> done) {
  const std::string& rid = trigger.request_id();
  {
    absl::MutexLock lock(&mu_);
    if (SeenOrMark(dedupe)) return done(Outcome::kDuplicate);
    unroutable_.erase(rid);
    auto it = requests_.find(rid);
    if (it != requests_.end()) {
      for (const auto& jid : it->second.jobs) {
        jobs_.erase(jid);
        dead_.erase(jid);
      }
      requests_.erase(it);
    }
  }
  done(Outcome::kHandled);
}

void InMemoryRoutingStore::GetDecision(const std::string& request_id,
                                       StoreCallback<v1::RoutingDecision> done) {
  absl::StatusOr<v1::RoutingDecision> out =
      absl::NotFoundError("no routing decision for that request yet");
  {
    absl::MutexLock lock(&mu_);
    auto it = requests_.find(request_id);
    if (it != requests_.end() && it->second.decided) out = it->second.decision;
  }
  done(std::move(out));
}

void InMemoryRoutingStore::GetParties(const std::string& request_id,
                                      StoreCallback<std::optional<common::RequestParties>> done) {
  std::optional<common::RequestParties> out;
  {
    absl::MutexLock lock(&mu_);
    auto it = requests_.find(request_id);
    if (it != requests_.end()) out = it->second.parties;
  }
  done(std::move(out));
}

void InMemoryRoutingStore::GetJob(const std::string& job_id,
                                  StoreCallback<v1::TranslationJob> done) {
  absl::StatusOr<v1::TranslationJob> out = NotFoundJob();
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it != jobs_.end()) out = ToProto(it->second);
  }
  done(std::move(out));
}

void InMemoryRoutingStore::ListJobsOfRequest(const std::string& request_id,
                                             StoreCallback<std::vector<v1::TranslationJob>> done) {
  std::vector<v1::TranslationJob> out;
  {
    absl::MutexLock lock(&mu_);
    auto it = requests_.find(request_id);
    if (it != requests_.end()) {
      for (const auto& jid : it->second.jobs) {  // a std::set: sorted by id
        auto j = jobs_.find(jid);
        if (j != jobs_.end()) out.push_back(ToProto(j->second));
      }
    }
  }
  done(std::move(out));
}

void InMemoryRoutingStore::Claim(const ClaimSpec& spec, absl::Time now,
                                 StoreCallback<v1::TranslationJob> done) {
  absl::StatusOr<v1::TranslationJob> out =
      absl::NotFoundError("no translation job is queued for those languages");
  {
    absl::MutexLock lock(&mu_);
    const std::string ledger = absl::StrCat(spec.claimer, "\n", spec.request_id);
    auto seen = spec.request_id.empty() ? claim_ledger_.end() : claim_ledger_.find(ledger);
    if (seen != claim_ledger_.end()) {
      // A repeated claim: the job the first one took.
      auto j = jobs_.find(seen->second);
      out =
          j == jobs_.end() ? absl::StatusOr<v1::TranslationJob>(NotFoundJob()) : ToProto(j->second);
    }
    std::set<std::string> wanted;
    if (seen == claim_ledger_.end()) {
      for (const auto& [src, tgt] : spec.pairs) wanted.insert(PairOf(src, tgt));
      Job* best = nullptr;
      auto key = [this](const Job& j) { return std::make_tuple(Score(j), ShardOfJob(j.id), j.id); };
      for (auto& [id, j] : jobs_) {
        if (j.status != v1::TRANSLATION_JOB_STATUS_QUEUED || !wanted.count(PairOf(j.src, j.tgt))) {
          continue;
        }
        if (best == nullptr || key(j) < key(*best)) best = &j;
      }
      if (best != nullptr) {
        Emit(best->rid, cv1::EVENT_TYPE_TRANSLATION_JOB_CLAIMED, now, TranslatorActor(spec.claimer),
             "", 0, best);
        best->token++;
        best->attempts++;
        best->status = v1::TRANSLATION_JOB_STATUS_CLAIMED;
        best->by = best->last_holder = spec.claimer;
        best->lease_ms = absl::ToInt64Milliseconds(spec.lease);
        best->lease_exp = Ms(now) + best->lease_ms;
        best->updated = Ms(now);
        if (!spec.request_id.empty()) claim_ledger_[ledger] = best->id;
        out = ToProto(*best);
      }
    }
  }
  done(std::move(out));
}

void InMemoryRoutingStore::Heartbeat(const std::string& job_id, int64_t token,
                                     const std::string& claimer, absl::Duration lease,
                                     absl::Time now, StoreCallback<v1::TranslationJob> done) {
  absl::StatusOr<v1::TranslationJob> out;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    Job* j = it == jobs_.end() ? nullptr : &it->second;
    if (absl::Status s = CheckLease(j, token, claimer, now); !s.ok()) {
      out = s;
    } else {
      if (lease > absl::ZeroDuration()) j->lease_ms = absl::ToInt64Milliseconds(lease);
      j->lease_exp = Ms(now) + j->lease_ms;
      j->updated = Ms(now);
      out = ToProto(*j);
    }
  }
  done(std::move(out));
}

void InMemoryRoutingStore::Complete(const std::string& job_id, int64_t token,
                                    const std::string& claimer,
                                    const std::string& translated_document_id,
                                    const std::string& sha256, absl::Time now,
                                    StoreCallback<CompleteResult> done) {
  absl::StatusOr<CompleteResult> out;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    Job* j = it == jobs_.end() ? nullptr : &it->second;
    CompleteResult result;
    if (j && j->done_token == token && j->done_kind == "complete" && j->last_holder == claimer) {
      if (j->tdoc != translated_document_id) {
        out = absl::AlreadyExistsError(
            "the job was completed under this token with another translated document");
      } else {
        result.job = ToProto(*j);
        result.replayed = true;
        result.turnaround = now - absl::FromUnixMillis(j->created);
        out = std::move(result);
      }
    } else if (absl::Status s = CheckLease(j, token, claimer, now); !s.ok()) {
      out = s;
    } else {
      j->status = v1::TRANSLATION_JOB_STATUS_COMPLETED;
      j->tdoc = translated_document_id;
      j->tsha = sha256;
      j->done_token = token;
      j->done_kind = "complete";
      j->updated = Ms(now);
      Request& r = requests_[j->rid];
      bool all_done = true;
      for (const auto& other : r.jobs) {
        const auto st = jobs_[other].status;
        if (st != v1::TRANSLATION_JOB_STATUS_COMPLETED &&
            st != v1::TRANSLATION_JOB_STATUS_CANCELLED) {
          all_done = false;
        }
      }
      const int status = all_done && !r.ended
                             ? (r.forward_status ? r.forward_status
                                                 : static_cast<int>(cv1::REQUEST_STATUS_FORWARDED))
                             : 0;
      Emit(j->rid, cv1::EVENT_TYPE_TRANSLATION_JOB_COMPLETED, now, TranslatorActor(claimer), "",
           status, j);
      result.job = ToProto(*j);
      result.request_done = all_done;
      result.turnaround = now - absl::FromUnixMillis(j->created);
      out = std::move(result);
    }
  }
  done(std::move(out));
}

void InMemoryRoutingStore::Fail(const std::string& job_id, int64_t token,
                                const std::string& claimer, const std::string& failure_code,
                                bool retryable, int max_attempts, absl::Time now,
                                StoreCallback<FailResult> done) {
  absl::StatusOr<FailResult> out;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    Job* j = it == jobs_.end() ? nullptr : &it->second;
    FailResult result;
    if (j && j->done_token == token && j->done_kind == "fail" && j->last_holder == claimer) {
      result.job = ToProto(*j);
      result.replayed = true;
      out = std::move(result);
    } else if (absl::Status s = CheckLease(j, token, claimer, now); !s.ok()) {
      out = s;
    } else {
      j->fcode = failure_code;
      j->by.clear();
      j->done_token = token;
      j->done_kind = "fail";
      j->updated = Ms(now);
      if (retryable && j->attempts < max_attempts) {
        j->status = v1::TRANSLATION_JOB_STATUS_QUEUED;
        pairs_.insert({ShardOfJob(j->id), PairOf(j->src, j->tgt)});
        Emit(j->rid, cv1::EVENT_TYPE_TRANSLATION_JOB_FAILED, now, TranslatorActor(claimer),
             failure_code, 0, j);
      } else {
        j->status = v1::TRANSLATION_JOB_STATUS_FAILED;
        dead_[j->id] = Ms(now);
        result.dead_lettered = true;
        Emit(j->rid, cv1::EVENT_TYPE_TRANSLATION_JOB_FAILED, now, TranslatorActor(claimer),
             "DEAD_LETTER", 0, j);
      }
      result.job = ToProto(*j);
      out = std::move(result);
    }
  }
  done(std::move(out));
}

void InMemoryRoutingStore::SweepExpiredLeases(int shard, int max_attempts, int limit,
                                              absl::Time now, StoreCallback<SweepResult> done) {
  SweepResult out;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::pair<int64_t, std::string>> due;
    for (const auto& [id, j] : jobs_) {
      if (j.status == v1::TRANSLATION_JOB_STATUS_CLAIMED && j.lease_exp <= Ms(now) &&
          ShardOfJob(id) == shard) {
        due.push_back({j.lease_exp, id});
      }
    }
    std::sort(due.begin(), due.end());
    if (due.size() > static_cast<size_t>(limit)) due.resize(limit);
    for (const auto& [_, id] : due) {
      Job& j = jobs_[id];
      ++out.expired;
      j.by.clear();
      j.fcode = "LEASE_EXPIRED";
      j.updated = Ms(now);
      if (j.attempts >= max_attempts) {
        j.status = v1::TRANSLATION_JOB_STATUS_FAILED;
        dead_[id] = Ms(now);
        ++out.dead_lettered;
        Emit(j.rid, cv1::EVENT_TYPE_TRANSLATION_JOB_FAILED, now, ServiceActor(), "DEAD_LETTER", 0,
             &j);
      } else {
        j.status = v1::TRANSLATION_JOB_STATUS_QUEUED;
        pairs_.insert({shard, PairOf(j.src, j.tgt)});
        Emit(j.rid, cv1::EVENT_TYPE_TRANSLATION_JOB_FAILED, now, ServiceActor(), "LEASE_EXPIRED", 0,
             &j);
      }
    }
  }
  done(out);
}

void InMemoryRoutingStore::Stats(int shard, StoreCallback<ShardStats> done) {
  ShardStats out;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, _] : dead_) {
      if (ShardOfJob(id) == shard) ++out.dead_letters;
    }
    for (const auto& [rid, _] : unroutable_) {
      auto s = sharding_.ShardOf("rq", rid);
      if (s.ok() && *s == shard) ++out.unroutable;
    }
    for (const auto& [s, pair] : pairs_) {
      if (s != shard) continue;
      PairStats p;
      const size_t gt = pair.find('>');
      p.source = pair.substr(0, gt);
      p.target = gt == std::string::npos ? "" : pair.substr(gt + 1);
      for (const auto& [id, j] : jobs_) {
        if (j.status != v1::TRANSLATION_JOB_STATUS_QUEUED || ShardOfJob(id) != shard ||
            PairOf(j.src, j.tgt) != pair) {
          continue;
        }
        ++p.depth;
        const absl::Time created = absl::FromUnixMillis(j.created);
        if (!p.oldest || created < *p.oldest) p.oldest = created;
      }
      out.pairs.push_back(std::move(p));
    }
  }
  done(std::move(out));
}

void InMemoryRoutingStore::ListQueue(const QueueListSpec& spec, StoreCallback<QueueListPage> done) {
  if (spec.page_size <= 0) return done(absl::InvalidArgumentError("page size must be positive"));
  auto wanted = [](const std::vector<std::string>& set, const std::string& lang) {
    if (set.empty()) return true;
    for (const auto& l : set) {
      if (Lower(l) == Lower(lang)) return true;
    }
    return false;
  };
  int64_t high = kBand - 1;
  if (spec.due_before) high = std::min<int64_t>(Ms(*spec.due_before), kNoDue - 1);
  high = std::max<int64_t>(high, -1);
  QueueListPage page;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::pair<int64_t, const Job*>> entries;
    for (const auto& [id, j] : jobs_) {
      if (spec.held) {
        if (j.status != v1::TRANSLATION_JOB_STATUS_CLAIMED || j.by != spec.holder) continue;
      } else if (j.status != v1::TRANSLATION_JOB_STATUS_QUEUED) {
        continue;
      }
      if (!wanted(spec.sources, j.src) || !wanted(spec.targets, j.tgt)) continue;
      const int64_t score = Score(j);
      const int64_t band = score / kBand;
      if (spec.urgency != cv1::URGENCY_UNSPECIFIED) {
        const int want = spec.urgency == cv1::URGENCY_EMERGENCY ? 0
                         : spec.urgency == cv1::URGENCY_URGENT  ? 1
                                                                : 2;
        if (band != want) continue;
      }
      if (score - band * kBand > high) continue;
      if (spec.after && std::tie(score, id) <= std::tie(spec.after->score, spec.after->id)) {
        continue;
      }
      entries.push_back({score, &j});
    }
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      return std::tie(a.first, a.second->id) < std::tie(b.first, b.second->id);
    });
    const size_t size = static_cast<size_t>(spec.page_size);
    for (size_t i = 0; i < entries.size() && i < size; ++i) {
      page.jobs.push_back(ToProto(*entries[i].second));
    }
    if (entries.size() > size) {
      page.next = QueueCursor{entries[size - 1].first, entries[size - 1].second->id};
    }
  }
  done(std::move(page));
}

std::vector<cv1::Event> InMemoryRoutingStore::EventsOf(const std::string& request_id) const {
  absl::MutexLock lock(&mu_);
  auto it = events_.find(request_id);
  return it == events_.end() ? std::vector<cv1::Event>() : it->second;
}

}  // namespace rogatory::routing
