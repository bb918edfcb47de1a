#include "redis_routing_store.h"

#include <algorithm>
#include <memory>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/time_util.h"
#include "redis_routing_scripts.h"
#include "rogatory/common/event_builder.h"
#include "rogatory/common/redis_reply.h"
#include "routing_event_handler.h"

namespace rogatory::routing {
namespace {

using common::v1::Event;
using google::protobuf::util::TimeUtil;
using internal::JobRow;
using internal::ShardKeys;
using internal::Step;
namespace cv1 = common::v1;

constexpr char kEmitter[] = "routing";
constexpr char kServiceActor[] = "rogatory-routing";
// How often one operation re-reads and re-runs when its script finds that what C++ read
// changed meanwhile (another writer of the same request). Each retry follows a change that
// committed, so the system progresses; this bounds one caller's share.
constexpr int kMaxAttempts = 16;
// A claim races other claimers for queue heads: it moves to the next head after each lost
// race (then a job another claimer took), so it gives up only far beyond any real contention.
constexpr int kMaxClaimTries = 100000;

absl::Status Contended() {
  return absl::AbortedError("the request changed concurrently too often; retry");
}

int64_t Ms(absl::Time t) { return absl::ToUnixMillis(t); }

// The template every event about the request starts from: request id, trace id,
// instrument, source and request facts. Stored with the decision; each script emits the
// stored template followed by the bytes of an EventTail (a field that appears later in an
// encoding is another field of the message) and the sequence (event_sequence.lua).
std::string Template(const Event& trigger) {
  static const auto* events = new common::EventBuilder(kEmitter);
  return events
      ->AboutRequest(
          {trigger.request_id(), trigger.trace_id(), trigger.instrument(), &trigger.request()})
      .SerializeAsString();
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

// Event ids of one operation: the first is a ULID made now, later ones replace its last
// four (random) characters with a counter, so one operation's events never collide.
class EventIds {
 public:
  explicit EventIds(absl::Time now) : base_(common::NewUlid(now)) {}
  std::string Next() {
    ++n_;
    if (n_ == 1) return base_;
    static constexpr char kB32[] = "0123456789abcdefghjkmnpqrstvwxyz";
    std::string s(4, '0');
    int n = n_;
    for (int i = 3; i >= 0; --i) {
      s[i] = kB32[n % 32];
      n /= 32;
    }
    return base_.substr(0, 22) + s;
  }

 private:
  std::string base_;
  int n_ = 0;
};

struct JobChange {
  std::string id, document, source, target, translated_document, failure_code;
};

// What an event adds to its request's template: everything but the sequence.
std::string EventTail(const std::string& id, cv1::EventType type, absl::Time now,
                      const cv1::Actor& actor, const std::string& reason, int status,
                      const JobChange* job) {
  Event e;
  common::EventBuilder::Stamp({type, absl::FromUnixMillis(Ms(now)), id}, e);
  *e.mutable_actor() = actor;
  e.set_reason_code(reason);
  e.set_status(static_cast<cv1::RequestStatus>(status));
  if (job) {
    auto* t = e.mutable_translation_job();
    t->set_job_id(job->id);
    t->set_document_id(job->document);
    t->set_source_language(job->source);
    t->set_target_language(job->target);
    t->set_translated_document_id(job->translated_document);
    t->set_failure_code(job->failure_code);
  }
  return e.SerializeAsString();
}

JobChange ChangeOf(const JobRow& r) {
  return {r.id, r.document, r.source, r.target, r.translated_document, r.failure_code};
}

// Job ids are tj-<shard>-<26 hex of sha1(request, document, target)>: one job per document
// and target, whatever the order or repetition of the events that create it.
std::string JobIdFor(int shard, const std::string& rid, const std::string& doc,
                     const std::string& target) {
  return absl::StrCat("tj-", shard, "-",
                      common::Sha1Hex(absl::StrCat(rid, "\n", doc, "\n", target)).substr(0, 26));
}

// The parties every receiver script records (need-to-know).
internal::PartiesValues PartiesOf(const Event& trigger, const std::string& executing_fallback = "",
                                  const std::string& notified_fallback = "") {
  const common::RequestParties p = common::PartiesOf(trigger.request());
  return {p.issuing_authority_id, p.issuing_state,
          p.executing_authority_id.empty() ? executing_fallback : p.executing_authority_id,
          p.requested_state,
          p.notified_authority_id.empty() ? notified_fallback : p.notified_authority_id};
}

Outcome OutcomeOf(Step s) {
  return s == Step::kDuplicate ? Outcome::kDuplicate : Outcome::kHandled;
}

// Reads the ids of a request's jobs, sorted (the order its scripts are given them in).
void ReadSortedJobIds(common::RedisClient& redis, const ShardKeys& keys, const std::string& rid,
                      StoreCallback<std::vector<std::string>> done) {
  internal::ReadJobIds(redis, keys, rid, [done](absl::StatusOr<std::vector<std::string>> ids) {
    if (ids.ok()) std::sort(ids->begin(), ids->end());
    done(std::move(ids));
  });
}

// Reads a request's jobs (ids, then their fields): the keys a receiver script touches.
void ReadRequestJobs(common::RedisClient& redis, const ShardKeys& keys, const std::string& rid,
                     StoreCallback<std::vector<JobRow>> done) {
  ReadSortedJobIds(redis, keys, rid,
                   [&redis, keys, done](absl::StatusOr<std::vector<std::string>> ids) {
                     if (!ids.ok()) return done(ids.status());
                     internal::ReadJobRows(redis, keys, *ids, done);
                   });
}

// Runs `attempt` until it answers something other than kRetry, at most kMaxAttempts times.
// `attempt` gets the callback to answer with; a retry runs it again from its first read.
template <typename T>
struct Retrying : std::enable_shared_from_this<Retrying<T>> {
  std::function<void(std::function<void(absl::StatusOr<std::optional<T>>)>)> attempt;
  StoreCallback<T> done;
  int tries = 0;
  void Run() {
    ++tries;
    attempt([self = this->shared_from_this()](absl::StatusOr<std::optional<T>> r) {
      if (!r.ok()) return self->done(r.status());
      if (*r) return self->done(std::move(**r));
      if (self->tries >= kMaxAttempts) return self->done(Contended());
      self->Run();
    });
  }
};
template <typename T>
void WithRetries(std::function<void(std::function<void(absl::StatusOr<std::optional<T>>)>)> attempt,
                 StoreCallback<T> done) {
  auto r = std::make_shared<Retrying<T>>();
  r->attempt = std::move(attempt);
  r->done = std::move(done);
  r->Run();
}

using OutcomeStep = std::function<void(absl::StatusOr<std::optional<Outcome>>)>;
// A receiver script's step as a retry loop's answer.
StoreCallback<Step> ReceiverStep(OutcomeStep next) {
  return [next](absl::StatusOr<Step> s) {
    if (!s.ok()) return next(s.status());
    if (*s == Step::kRetry) return next(std::optional<Outcome>());
    next(std::optional<Outcome>(OutcomeOf(*s)));
  };
}

// One attempt of a receiver script that is given the request's jobs as read (UpdateDeadline,
// EndRequest, EraseRequest): reads them into a copy of `base`, lets `prepare` fill in what
// depends on them, and runs the script.
template <typename Call>
void RunWithRequestJobs(common::RedisClient& redis, const ShardKeys& keys, const Call& base,
                        void (*run)(common::RedisClient&, const ShardKeys&, const Call&,
                                    StoreCallback<Step>),
                        OutcomeStep next, std::function<void(Call&)> prepare = nullptr) {
  ReadRequestJobs(redis, keys, base.request_id,
                  [&redis, keys, base, run, next,
                   prepare = std::move(prepare)](absl::StatusOr<std::vector<JobRow>> jobs) {
                    if (!jobs.ok()) return next(jobs.status());
                    Call call = base;
                    call.jobs = std::move(*jobs);
                    if (prepare) prepare(call);
                    run(redis, keys, call, ReceiverStep(next));
                  });
}

}  // namespace

std::string RedisRoutingStore::KeyPrefix(int shard) { return ShardKeys(shard).prefix(); }

RedisRoutingStore::RedisRoutingStore(common::RedisClient& redis, common::Sharding sharding)
    : redis_(redis), sharding_(sharding) {}

void RedisRoutingStore::RecordDecision(const Event& trigger, const v1::RoutingDecision& decision,
                                       cv1::RequestStatus status, const common::Dedupe& dedupe,
                                       absl::Time now, StoreCallback<Outcome> done) {
  auto shard = sharding_.ShardOf("rq", trigger.request_id());
  if (!shard.ok()) return done(shard.status());
  const ShardKeys keys(*shard);
  // What does not depend on the reads.
  auto base = std::make_shared<internal::DecideCall>();
  base->seen_key = dedupe.seen_key;
  base->retention_ms = dedupe.retention_ms;
  base->request_id = trigger.request_id();
  base->now_ms = Ms(now);
  base->parties = PartiesOf(trigger, decision.competent_authority().authority_id(),
                            decision.notified_authority().authority_id());
  base->decision = decision.SerializeAsString();
  base->need = decision.translation_required();
  base->source = trigger.request().source_language();
  base->target = decision.target_language();
  base->urgency = static_cast<int>(trigger.request().urgency());
  base->unroutable = decision.unroutable();
  base->event_template = Template(trigger);
  base->forward_status = static_cast<int>(ForwardStatusFor(decision));
  Event payload;
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
  std::string reason_code;
  if (decision.unroutable() && decision.reasons_size() > 0) {
    reason_code = absl::StrCat("UNROUTABLE_", decision.reasons(decision.reasons_size() - 1).code());
  }
  common::RedisClient& redis = redis_;
  WithRetries<Outcome>(
      [&redis, keys, base, payload, reason_code, status, now](OutcomeStep next) {
        // Reads the request's jobs and documents (both at once), then decides.
        struct Reads {
          absl::Mutex mu;
          int pending = 2;
          absl::Status error;
          std::vector<JobRow> jobs;
          std::map<std::string, std::string> docs;
        };
        auto reads = std::make_shared<Reads>();
        auto finish = [&redis, keys, base, payload, reason_code, status, now, reads, next]() {
          if (!reads->error.ok()) return next(reads->error);
          auto call = std::make_shared<internal::DecideCall>(*base);
          EventIds ids(now);
          const std::string decided_id = ids.Next();
          auto decided = [&](int st) {
            Event e;
            e.ParseFromString(EventTail(decided_id, cv1::EVENT_TYPE_ROUTING_DECIDED, now,
                                        ServiceActor(), reason_code, st, nullptr));
            e.MergeFrom(payload);
            return e.SerializeAsString();
          };
          call->decided_with_status = decided(static_cast<int>(status));
          call->decided_without_status = decided(0);
          std::set<std::string> existing;
          for (const JobRow& j : reads->jobs) {
            existing.insert(j.id);
            internal::DecideCall::Existing x{j.id, internal::PairOf(j.source, j.target), j.status,
                                             j.token, ""};
            if (j.status == "1" && (!call->need || j.target != call->target)) {
              const JobChange change = ChangeOf(j);
              x.cancel_event = EventTail(ids.Next(), cv1::EVENT_TYPE_TRANSLATION_JOB_CANCELLED, now,
                                         ServiceActor(), "ROUTING_CHANGED", 0, &change);
            }
            call->existing.push_back(std::move(x));
          }
          for (const auto& [doc, value] : reads->docs) {
            call->documents.push_back({doc, value});
            if (!call->need) continue;
            const std::string lang = value.substr(0, value.find('\n'));
            if (absl::AsciiStrToLower(lang) != absl::AsciiStrToLower(call->source)) continue;
            const std::string jid = JobIdFor(keys.shard(), call->request_id, doc, call->target);
            if (existing.count(jid)) continue;
            const JobChange change{jid, doc, call->source, call->target, "", ""};
            call->create.push_back({jid, doc,
                                    EventTail(ids.Next(), cv1::EVENT_TYPE_TRANSLATION_JOB_QUEUED,
                                              now, ServiceActor(), "", 0, &change)});
          }
          internal::RunDecide(redis, keys, *call, ReceiverStep(next));
        };
        auto one_done = [reads, finish]() {
          bool last;
          {
            absl::MutexLock lock(&reads->mu);
            last = --reads->pending == 0;
          }
          if (last) finish();
        };
        ReadRequestJobs(redis, keys, base->request_id,
                        [reads, one_done](absl::StatusOr<std::vector<JobRow>> jobs) {
                          {
                            absl::MutexLock lock(&reads->mu);
                            if (!jobs.ok()) {
                              reads->error = jobs.status();
                            } else {
                              reads->jobs = std::move(*jobs);
                            }
                          }
                          one_done();
                        });
        internal::ReadDocuments(
            redis, keys, base->request_id,
            [reads, one_done](absl::StatusOr<std::map<std::string, std::string>> docs) {
              {
                absl::MutexLock lock(&reads->mu);
                if (!docs.ok()) {
                  reads->error = docs.status();
                } else {
                  reads->docs = std::move(*docs);
                }
              }
              one_done();
            });
      },
      std::move(done));
}

void RedisRoutingStore::AddDocument(const Event& trigger, const common::Dedupe& dedupe,
                                    absl::Time now, StoreCallback<Outcome> done) {
  auto shard = sharding_.ShardOf("rq", trigger.request_id());
  if (!shard.ok()) return done(shard.status());
  const ShardKeys keys(*shard);
  internal::AddDocumentCall base;
  base.seen_key = dedupe.seen_key;
  base.retention_ms = dedupe.retention_ms;
  base.request_id = trigger.request_id();
  base.now_ms = Ms(now);
  base.parties = PartiesOf(trigger);
  base.document = trigger.document().document_id();
  base.language = trigger.document().language();
  base.sha256 = trigger.document().sha256();
  common::RedisClient& redis = redis_;
  WithRetries<Outcome>(
      [&redis, keys, base, now](OutcomeStep next) {
        internal::ReadDecisionFields(
            redis, keys, base.request_id, {"src", "tgt"},
            [&redis, keys, base, now, next](absl::StatusOr<std::vector<std::string>> dec) {
              if (!dec.ok()) return next(dec.status());
              internal::AddDocumentCall call = base;
              call.read_source = (*dec)[0];
              call.read_target = (*dec)[1];
              call.job_id =
                  JobIdFor(keys.shard(), call.request_id, call.document, call.read_target);
              const JobChange change{
                  call.job_id, call.document, call.read_source, call.read_target, "", ""};
              call.queued_event =
                  EventTail(EventIds(now).Next(), cv1::EVENT_TYPE_TRANSLATION_JOB_QUEUED, now,
                            ServiceActor(), "", 0, &change);
              internal::RunAddDocument(redis, keys, call, ReceiverStep(next));
            });
      },
      std::move(done));
}

void RedisRoutingStore::UpdateDeadline(const Event& trigger, std::optional<absl::Time> due,
                                       const common::Dedupe& dedupe, StoreCallback<Outcome> done) {
  auto shard = sharding_.ShardOf("rq", trigger.request_id());
  if (!shard.ok()) return done(shard.status());
  const ShardKeys keys(*shard);
  internal::UpdateDeadlineCall base;
  base.seen_key = dedupe.seen_key;
  base.retention_ms = dedupe.retention_ms;
  base.request_id = trigger.request_id();
  base.parties = PartiesOf(trigger);
  base.deadline_id = trigger.deadline().deadline_id();
  if (due) base.due_ms = Ms(*due);
  common::RedisClient& redis = redis_;
  WithRetries<Outcome>(
      [&redis, keys, base](OutcomeStep next) {
        RunWithRequestJobs(redis, keys, base, &internal::RunUpdateDeadline, next);
      },
      std::move(done));
}

void RedisRoutingStore::EndRequest(const Event& trigger, const common::Dedupe& dedupe,
                                   absl::Time now, StoreCallback<Outcome> done) {
  auto shard = sharding_.ShardOf("rq", trigger.request_id());
  if (!shard.ok()) return done(shard.status());
  const ShardKeys keys(*shard);
  internal::EndRequestCall base;
  base.seen_key = dedupe.seen_key;
  base.retention_ms = dedupe.retention_ms;
  base.request_id = trigger.request_id();
  base.now_ms = Ms(now);
  base.parties = PartiesOf(trigger);
  const std::string reason = absl::StrCat(
      "REQUEST_",
      cv1::EventType_Name(trigger.type()).substr(std::string("EVENT_TYPE_REQUEST_").size()));
  common::RedisClient& redis = redis_;
  WithRetries<Outcome>(
      [&redis, keys, base, reason, now](OutcomeStep next) {
        RunWithRequestJobs<internal::EndRequestCall>(
            redis, keys, base, &internal::RunEndRequest, next,
            [reason, now](internal::EndRequestCall& call) {
              // Each active job is cancelled with an event of its own.
              EventIds ids(now);
              for (const JobRow& j : call.jobs) {
                std::string ev;
                if (j.status == "1" || j.status == "2") {
                  const JobChange change = ChangeOf(j);
                  ev = EventTail(ids.Next(), cv1::EVENT_TYPE_TRANSLATION_JOB_CANCELLED, now,
                                 ServiceActor(), reason, 0, &change);
                }
                call.cancel_events.push_back(std::move(ev));
              }
            });
      },
      std::move(done));
}

void RedisRoutingStore::EraseRequest(const Event& trigger, const common::Dedupe& dedupe,
                                     absl::Time now, StoreCallback<Outcome> done) {
  auto shard = sharding_.ShardOf("rq", trigger.request_id());
  if (!shard.ok()) return done(shard.status());
  const ShardKeys keys(*shard);
  internal::EraseRequestCall base;
  base.seen_key = dedupe.seen_key;
  base.retention_ms = dedupe.retention_ms;
  base.request_id = trigger.request_id();
  base.now_ms = Ms(now);
  common::RedisClient& redis = redis_;
  WithRetries<Outcome>(
      [&redis, keys, base](OutcomeStep next) {
        RunWithRequestJobs(redis, keys, base, &internal::RunEraseRequest, next);
      },
      std::move(done));
}

void RedisRoutingStore::GetDecision(const std::string& request_id,
                                    StoreCallback<v1::RoutingDecision> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"HGET", ShardKeys(*shard).Decision(request_id), "pb"},
                 [done](absl::StatusOr<common::RedisReply> r) {
                   if (!r.ok()) return done(r.status());
                   auto pb = common::ReplyOptionalString(*r, "HGET dec pb");
                   if (!pb.ok()) return done(pb.status());
                   if (!*pb) {
                     return done(absl::NotFoundError("no routing decision for that request yet"));
                   }
                   v1::RoutingDecision d;
                   if (!d.ParseFromString(**pb)) {
                     return done(absl::InternalError("stored decision does not parse"));
                   }
                   done(std::move(d));
                 });
}

void RedisRoutingStore::GetParties(const std::string& request_id,
                                   StoreCallback<std::optional<common::RequestParties>> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  common::LoadRequestParties(redis_, ShardKeys(*shard).Parties(request_id), std::move(done));
}

void RedisRoutingStore::GetJob(const std::string& job_id, StoreCallback<v1::TranslationJob> done) {
  auto shard = sharding_.ShardOf("tj", job_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"HGETALL", ShardKeys(*shard).Job(job_id)},
                 [done, job_id](absl::StatusOr<common::RedisReply> r) {
                   if (!r.ok()) return done(r.status());
                   auto fields = common::ReplyFields(*r, "HGETALL job");
                   if (!fields.ok()) return done(fields.status());
                   if (fields->empty()) {
                     return done(absl::NotFoundError("no translation job has that id"));
                   }
                   done(internal::JobFromFields(job_id, *fields));
                 });
}

void RedisRoutingStore::ListJobsOfRequest(const std::string& request_id,
                                          StoreCallback<std::vector<v1::TranslationJob>> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  const ShardKeys keys(*shard);
  common::RedisClient& redis = redis_;
  using Jobs = std::vector<v1::TranslationJob>;
  WithRetries<Jobs>(
      [&redis, keys, request_id](std::function<void(absl::StatusOr<std::optional<Jobs>>)> next) {
        ReadSortedJobIds(
            redis, keys, request_id,
            [&redis, keys, request_id, next](absl::StatusOr<std::vector<std::string>> ids) {
              if (!ids.ok()) return next(ids.status());
              internal::RunRequestJobs(redis, keys, request_id, *ids, next);
            });
      },
      std::move(done));
}

namespace {
// Score bands of the queues: emergency, urgent, then the rest (see the scripts' `band`).
constexpr int64_t kBand = 10000000000000;
constexpr int64_t kNoDue = 9000000000000;
// The held index is filtered by language after it is read: at most this many of a holder's
// jobs are read per shard and page (a translator holds far fewer).
constexpr int kHeldReadLimit = 1000;
// A claimable listing naming at most this many (source, target) pairs reads their queues
// without reading the shard's pairs first.
constexpr size_t kNamedPairsLimit = 16;
int BandOf(cv1::Urgency u) {
  if (u == cv1::URGENCY_EMERGENCY) return 0;
  if (u == cv1::URGENCY_URGENT) return 1;
  return 2;
}

struct QueueEntry {
  int64_t score;
  std::string id;
  v1::TranslationJob job;
};

// One listing across shards: every shard answers its first (page size + 1) jobs after the
// cursor at once; the merge keeps the page size and says whether more follow.
struct ListQueueRun : std::enable_shared_from_this<ListQueueRun> {
  QueueListSpec spec;
  StoreCallback<QueueListPage> done;
  absl::Mutex mu;
  int pending = 0;
  absl::Status error;
  std::vector<QueueEntry> entries;

  void ShardDone(absl::StatusOr<std::vector<QueueEntry>> shard_entries) {
    bool last;
    {
      absl::MutexLock lock(&mu);
      if (!shard_entries.ok()) {
        error = shard_entries.status();
      } else {
        for (auto& e : *shard_entries) entries.push_back(std::move(e));
      }
      last = --pending == 0;
    }
    if (last) Finish();
  }

  void Finish() {
    if (!error.ok()) return done(error);
    std::sort(entries.begin(), entries.end(), [](const QueueEntry& a, const QueueEntry& b) {
      return std::tie(a.score, a.id) < std::tie(b.score, b.id);
    });
    QueueListPage page;
    const size_t size = static_cast<size_t>(spec.page_size);
    for (size_t i = 0; i < entries.size() && i < size; ++i) {
      page.jobs.push_back(std::move(entries[i].job));
    }
    if (entries.size() > size) {
      page.next = QueueCursor{entries[size - 1].score, entries[size - 1].id};
    }
    done(std::move(page));
  }
};

bool LanguageOk(const std::vector<std::string>& wanted, const std::string& lang) {
  return wanted.empty() ||
         std::find(wanted.begin(), wanted.end(), absl::AsciiStrToLower(lang)) != wanted.end();
}
}  // namespace

void RedisRoutingStore::ListQueue(const QueueListSpec& spec, StoreCallback<QueueListPage> done) {
  if (spec.page_size <= 0) return done(absl::InvalidArgumentError("page size must be positive"));
  auto lowered = std::make_shared<QueueListSpec>(spec);
  for (auto& l : lowered->sources) l = absl::AsciiStrToLower(l);
  for (auto& l : lowered->targets) l = absl::AsciiStrToLower(l);
  internal::QueuePageCall page;
  page.need = spec.held ? kHeldReadLimit : spec.page_size + 1;
  page.after = spec.after;
  std::vector<int> bands = {0, 1, 2};
  if (spec.urgency != cv1::URGENCY_UNSPECIFIED) bands = {BandOf(spec.urgency)};
  for (int band : bands) {
    int64_t high = kBand - 1;
    if (spec.due_before) high = std::min<int64_t>(absl::ToUnixMillis(*spec.due_before), kNoDue - 1);
    page.ranges.push_back({band * kBand, band * kBand + std::max<int64_t>(high, -1)});
  }

  auto run = std::make_shared<ListQueueRun>();
  run->spec = spec;
  run->done = std::move(done);
  const int shards = sharding_.shard_count();
  run->pending = shards;
  common::RedisClient& redis = redis_;
  using Entries = std::vector<QueueEntry>;
  for (int shard = 0; shard < shards; ++shard) {
    const ShardKeys keys(shard);
    // One shard: the indexes to read (the pairs' queues, or the holder's index), a page of
    // ids from them, then those jobs, re-checked in their indexes.
    auto attempt = [&redis, keys, page,
                    lowered](std::function<void(absl::StatusOr<std::optional<Entries>>)> next) {
      auto with_indexes = [&redis, keys, page, lowered, next](std::vector<std::string> indexes) {
        internal::QueuePageCall call = page;
        call.indexes = std::move(indexes);
        internal::RunQueuePage(
            redis, call,
            [&redis, keys, call, lowered,
             next](absl::StatusOr<std::vector<internal::PageEntry>> listed) {
              if (!listed.ok()) return next(listed.status());
              std::vector<std::pair<internal::PageEntry, std::string>> entries;
              for (const auto& e : *listed) entries.push_back({e, call.indexes[e.index]});
              internal::RunListedJobs(
                  redis, keys, entries,
                  [entries, lowered,
                   next](absl::StatusOr<std::optional<std::vector<v1::TranslationJob>>> jobs) {
                    if (!jobs.ok()) return next(jobs.status());
                    if (!*jobs) return next(std::optional<Entries>());
                    Entries out;
                    for (size_t i = 0; i < entries.size(); ++i) {
                      v1::TranslationJob& j = (**jobs)[i];
                      if (lowered->held && (!LanguageOk(lowered->sources, j.source_language()) ||
                                            !LanguageOk(lowered->targets, j.target_language()))) {
                        continue;
                      }
                      if (out.size() > static_cast<size_t>(lowered->page_size)) break;
                      out.push_back(QueueEntry{entries[i].first.score, j.id(), std::move(j)});
                    }
                    next(std::optional<Entries>(std::move(out)));
                  });
            });
      };
      if (lowered->held) return with_indexes({keys.Held(lowered->holder)});
      // Both languages named (as a translator's client does): the queues are named too, so
      // nothing is read first; a pair never queued is an empty index. Otherwise the shard's
      // pairs are read and filtered.
      if (!lowered->sources.empty() && !lowered->targets.empty() &&
          lowered->sources.size() * lowered->targets.size() <= kNamedPairsLimit) {
        std::set<std::string> pairs;
        for (const auto& src : lowered->sources) {
          for (const auto& tgt : lowered->targets) pairs.insert(internal::PairOf(src, tgt));
        }
        std::vector<std::string> indexes;
        for (const auto& p : pairs) indexes.push_back(keys.Queue(p));
        return with_indexes(std::move(indexes));
      }
      internal::ReadPairs(
          redis, keys,
          [keys, lowered, with_indexes, next](absl::StatusOr<std::vector<std::string>> pairs) {
            if (!pairs.ok()) return next(pairs.status());
            std::sort(pairs->begin(), pairs->end());
            std::vector<std::string> indexes;
            for (const auto& p : *pairs) {
              const size_t gt = p.find('>');
              if (gt == std::string::npos) continue;
              if (!LanguageOk(lowered->sources, p.substr(0, gt)) ||
                  !LanguageOk(lowered->targets, p.substr(gt + 1))) {
                continue;
              }
              indexes.push_back(keys.Queue(p));
            }
            with_indexes(std::move(indexes));
          });
    };
    WithRetries<Entries>(
        attempt, [run](absl::StatusOr<Entries> entries) { run->ShardDone(std::move(entries)); });
  }
}

namespace {
// One claim across shards: peeks every shard's best queued job at once, then claims in
// the order of those scores. A job another claimer took meanwhile makes its shard peeked
// again (its next job takes the place in score order); a shard whose queues are empty drops
// out. Never a scan of queues.
struct ClaimRun : std::enable_shared_from_this<ClaimRun> {
  common::RedisClient* redis;
  std::shared_ptr<RedisRoutingStore::CompletionHints> hints;
  ClaimSpec spec;
  absl::Time now;
  StoreCallback<v1::TranslationJob> done;
  std::vector<std::string> pairs;
  absl::Mutex mu;
  int pending = 0;
  absl::Status error;
  std::vector<std::pair<internal::QueueHead, int>> candidates;  // (head, shard), best last
  int tries = 0;

  void Peek(int shards) {
    pending = shards;
    for (int s = 0; s < shards; ++s) {
      internal::RunPeekQueues(
          *redis, ShardKeys(s), pairs,
          [self = shared_from_this(), s](absl::StatusOr<std::optional<internal::QueueHead>> h) {
            bool last;
            {
              absl::MutexLock lock(&self->mu);
              if (!h.ok()) {
                self->error = h.status();
              } else if (*h) {
                self->candidates.push_back({std::move(**h), s});
              }
              last = --self->pending == 0;
            }
            if (last) {
              self->Sort();
              self->ClaimNext();
            }
          });
    }
  }

  void Sort() {
    std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
      return std::tie(a.first.score, a.second) > std::tie(b.first.score, b.second);
    });
  }

  void ClaimNext() {
    if (candidates.empty()) {
      if (!error.ok()) return done(error);
      return done(absl::NotFoundError("no translation job is queued for those languages"));
    }
    // Each lost race means another claim succeeded, so the loop ends; the bound only
    // guards against a defect.
    if (++tries > kMaxClaimTries) return done(Contended());
    // Named copies, not structured bindings: clang 14 (the sanitizer build) cannot capture
    // a structured binding in a lambda.
    const auto head = candidates.back().first;
    const int shard = candidates.back().second;
    candidates.pop_back();
    const ShardKeys keys(shard);
    internal::ReadJobRows(
        *redis, keys, {head.job_id},
        [self = shared_from_this(), keys, head](absl::StatusOr<std::vector<JobRow>> rows) {
          if (!rows.ok()) {
            self->error = rows.status();
            return self->ClaimNext();
          }
          const JobRow& row = (*rows)[0];
          if (!row.exists) return self->Repeek(keys);
          internal::ClaimCall call;
          call.job_id = row.id;
          call.pair = internal::PairOf(row.source, row.target);
          call.request_id = row.request_id;
          call.token = row.token;
          call.now_ms = Ms(self->now);
          call.lease_ms = absl::ToInt64Milliseconds(self->spec.lease);
          call.claimer = self->spec.claimer;
          const JobChange change = ChangeOf(row);
          call.claimed_event =
              EventTail(EventIds(self->now).Next(), cv1::EVENT_TYPE_TRANSLATION_JOB_CLAIMED,
                        self->now, TranslatorActor(self->spec.claimer), "", 0, &change);
          internal::RunClaim(
              *self->redis, keys, call,
              [self, keys, row, id = call.job_id](absl::StatusOr<internal::ClaimResult> r) {
                if (!r.ok()) {
                  self->error = r.status();
                  return self->ClaimNext();
                }
                if (r->retry) return self->Repeek(keys);
                v1::TranslationJob job = internal::JobFromFields(id, r->job);
                RedisRoutingStore::CompletionHint hint;
                hint.request_id = row.request_id;
                hint.document = row.document;
                hint.source = row.source;
                hint.target = row.target;
                hint.failure_code = row.failure_code;
                hint.claimer = self->spec.claimer;
                hint.token = job.lease_token();
                hint.job_ids = std::move(r->context.job_ids);
                hint.forward_status = std::move(r->context.forward_status);
                self->hints->Put(id, std::move(hint));
                self->done(std::move(job));
              });
        });
  }

  // Another claimer took the shard's head: its next head, if any, joins the candidates.
  void Repeek(const ShardKeys& keys) {
    internal::RunPeekQueues(
        *redis, keys, pairs,
        [self = shared_from_this(), keys](absl::StatusOr<std::optional<internal::QueueHead>> h) {
          if (!h.ok()) {
            self->error = h.status();
          } else if (*h) {
            self->candidates.push_back({std::move(**h), keys.shard()});
            self->Sort();
          }
          self->ClaimNext();
        });
  }
};
}  // namespace

// Claim idempotency: a ledger entry in the shard of (claimer, request_id), taken as
// 'pending' before the claim and set to the job id after it. The claim itself is atomic in
// the job's shard; the ledger cannot join that step (another shard), so a crash between the
// two leaves a 'pending' entry that expires after kClaimPendingTtl: the retry then claims
// anew, and the job claimed first returns to its queue when its lease runs out.
constexpr absl::Duration kClaimPendingTtl = absl::Seconds(30);
constexpr absl::Duration kClaimLedgerTtl = absl::Hours(24);

void RedisRoutingStore::Claim(const ClaimSpec& spec, absl::Time now,
                              StoreCallback<v1::TranslationJob> done) {
  if (spec.request_id.empty()) return ClaimNow(spec, now, std::move(done));
  const std::string stable = absl::StrCat(spec.claimer, "\n", spec.request_id);
  const std::string key =
      absl::StrCat(KeyPrefix(sharding_.ShardFor(stable)), "claimidem:", common::Sha1Hex(stable));
  redis_.Command(
      {"SET", key, "pending", "NX", "PX",
       absl::StrCat(absl::ToInt64Milliseconds(kClaimPendingTtl))},
      [this, spec, now, done, key](absl::StatusOr<common::RedisReply> set) {
        if (!set.ok()) return done(set.status());
        auto taken = common::ReplyOptionalString(*set, "SET claimidem");
        if (!taken.ok()) return done(taken.status());
        if (!*taken) {  // seen before
          return redis_.Command({"GET", key}, [this, done](absl::StatusOr<common::RedisReply> got) {
            if (!got.ok()) return done(got.status());
            auto job_id = common::ReplyOptionalString(*got, "GET claimidem");
            if (!job_id.ok()) return done(job_id.status());
            if (!*job_id || **job_id == "pending") {
              return done(absl::AbortedError("a claim with this request_id is in progress; retry"));
            }
            GetJob(**job_id, done);
          });
        }
        ClaimNow(spec, now, [this, done, key](absl::StatusOr<v1::TranslationJob> job) {
          std::vector<std::string> after =
              job.ok() ? std::vector<std::string>{"SET", key, job->id(), "PX",
                                                  absl::StrCat(
                                                      absl::ToInt64Milliseconds(kClaimLedgerTtl))}
                       : std::vector<std::string>{"DEL", key};
          // The claim stands whatever the ledger write does: a lost entry only makes a
          // retry claim anew.
          redis_.Command(std::move(after),
                         [done, job](absl::StatusOr<common::RedisReply>) { done(job); });
        });
      });
}

void RedisRoutingStore::ClaimNow(const ClaimSpec& spec, absl::Time now,
                                 StoreCallback<v1::TranslationJob> done) {
  auto run = std::make_shared<ClaimRun>();
  run->redis = &redis_;
  run->hints = hints_;
  run->spec = spec;
  run->now = now;
  run->done = std::move(done);
  for (const auto& [src, tgt] : spec.pairs) run->pairs.push_back(internal::PairOf(src, tgt));
  run->Peek(sharding_.shard_count());
}

namespace {
// A lease-checked script's answer as a job, or the refusal's error.
absl::StatusOr<v1::TranslationJob> JobOrRefusal(const std::string& job_id,
                                                const internal::LeaseResult& r) {
  if (r.refusal != internal::LeaseRefusal::kNone) return internal::LeaseError(r.refusal);
  return internal::JobFromFields(job_id, r.job);
}
}  // namespace

void RedisRoutingStore::Heartbeat(const std::string& job_id, int64_t token,
                                  const std::string& claimer, absl::Duration lease, absl::Time now,
                                  StoreCallback<v1::TranslationJob> done) {
  auto shard = sharding_.ShardOf("tj", job_id);
  if (!shard.ok()) return done(shard.status());
  internal::HeartbeatCall call;
  call.job_id = job_id;
  call.token = token;
  call.claimer = claimer;
  if (lease > absl::ZeroDuration()) call.lease_ms = absl::ToInt64Milliseconds(lease);
  call.now_ms = Ms(now);
  internal::RunHeartbeat(redis_, ShardKeys(*shard), call,
                         [done, job_id](absl::StatusOr<internal::LeaseResult> r) {
                           if (!r.ok()) return done(r.status());
                           done(JobOrRefusal(job_id, *r));
                         });
}

void RedisRoutingStore::CompletionHints::Put(const std::string& job_id, CompletionHint hint) {
  absl::MutexLock lock(&mu_);
  // Bounded: a hint whose job is never completed here only waits to be pushed out.
  if (hints_.size() >= kCapacity && !hints_.contains(job_id)) hints_.erase(hints_.begin());
  hints_[job_id] = std::move(hint);
}

std::optional<RedisRoutingStore::CompletionHint> RedisRoutingStore::CompletionHints::Take(
    const std::string& job_id, int64_t token, const std::string& claimer) {
  absl::MutexLock lock(&mu_);
  auto it = hints_.find(job_id);
  if (it == hints_.end()) return std::nullopt;
  // Another caller's or an old lease's completion (refused by the script) leaves it.
  if (it->second.token != token || it->second.claimer != claimer) return std::nullopt;
  std::optional<CompletionHint> out = std::move(it->second);
  hints_.erase(it);
  return out;
}

void RedisRoutingStore::Complete(const std::string& job_id, int64_t token,
                                 const std::string& claimer,
                                 const std::string& translated_document_id,
                                 const std::string& sha256, absl::Time now,
                                 StoreCallback<CompleteResult> done) {
  auto shard = sharding_.ShardOf("tj", job_id);
  if (!shard.ok()) return done(shard.status());
  const ShardKeys keys(*shard);
  common::RedisClient& redis = redis_;
  using Step = std::function<void(absl::StatusOr<std::optional<CompleteResult>>)>;
  // The script, given the job as read (or as its claim saw it) and its request's context.
  auto run = [&redis, keys, token, claimer, translated_document_id, sha256, now](
                 const JobRow& row, const internal::CompletionContext& context, Step next) {
    internal::CompleteCall call;
    call.job_id = row.id;
    call.token = token;
    call.claimer = claimer;
    call.translated_document = translated_document_id;
    call.sha256 = sha256;
    call.now_ms = Ms(now);
    call.request_id = row.request_id;
    call.forward_status = context.forward_status;
    call.request_jobs = context.job_ids;
    JobChange change = ChangeOf(row);
    change.translated_document = translated_document_id;
    int forward = static_cast<int>(cv1::REQUEST_STATUS_FORWARDED);
    if (!call.forward_status.empty()) (void)absl::SimpleAtoi(call.forward_status, &forward);
    const std::string id = EventIds(now).Next();
    const cv1::Actor actor = TranslatorActor(claimer);
    call.completed_with_status =
        EventTail(id, cv1::EVENT_TYPE_TRANSLATION_JOB_COMPLETED, now, actor, "", forward, &change);
    call.completed_without_status =
        EventTail(id, cv1::EVENT_TYPE_TRANSLATION_JOB_COMPLETED, now, actor, "", 0, &change);
    internal::RunComplete(
        redis, keys, call, [id = row.id, now, next](absl::StatusOr<internal::LeaseResult> r) {
          if (!r.ok()) return next(r.status());
          if (r->retry) return next(std::optional<CompleteResult>());
          auto job = JobOrRefusal(id, *r);
          if (!job.ok()) return next(job.status());
          CompleteResult out;
          out.job = std::move(*job);
          out.replayed = r->outcome == "replayed";
          out.request_done = r->request_done;
          out.turnaround =
              now - absl::FromUnixMillis(TimeUtil::TimestampToMilliseconds(out.job.create_time()));
          next(std::optional<CompleteResult>(std::move(out)));
        });
  };
  // A claim on this replica left a hint: the first attempt runs the script at once. A
  // 'retry' (the hint was stale) reads as without one.
  auto hint = std::make_shared<std::optional<CompletionHint>>(hints_->Take(job_id, token, claimer));
  WithRetries<CompleteResult>(
      [&redis, keys, job_id, run, hint](Step next) {
        if (*hint) {
          JobRow row;
          row.id = job_id;
          row.exists = true;
          row.request_id = (*hint)->request_id;
          row.document = (*hint)->document;
          row.source = (*hint)->source;
          row.target = (*hint)->target;
          row.failure_code = (*hint)->failure_code;
          internal::CompletionContext context{std::move((*hint)->job_ids),
                                              std::move((*hint)->forward_status)};
          hint->reset();
          return run(row, context, next);
        }
        // The job's request, then that request's jobs and forward status (at once).
        internal::ReadJobRows(
            redis, keys, {job_id},
            [&redis, keys, run, next](absl::StatusOr<std::vector<JobRow>> rows) {
              if (!rows.ok()) return next(rows.status());
              const JobRow row = (*rows)[0];
              if (!row.exists) return next(internal::LeaseError(internal::LeaseRefusal::kNotFound));
              internal::ReadCompletionContext(
                  redis, keys, row.request_id,
                  [row, run, next](absl::StatusOr<internal::CompletionContext> context) {
                    if (!context.ok()) return next(context.status());
                    run(row, *context, next);
                  });
            });
      },
      std::move(done));
}

void RedisRoutingStore::Fail(const std::string& job_id, int64_t token, const std::string& claimer,
                             const std::string& failure_code, bool retryable, int max_attempts,
                             absl::Time now, StoreCallback<FailResult> done) {
  auto shard = sharding_.ShardOf("tj", job_id);
  if (!shard.ok()) return done(shard.status());
  const ShardKeys keys(*shard);
  internal::FailCall base;
  base.job_id = job_id;
  base.token = token;
  base.claimer = claimer;
  base.failure_code = failure_code;
  base.retryable = retryable;
  base.max_attempts = max_attempts;
  base.now_ms = Ms(now);
  common::RedisClient& redis = redis_;
  using Step = std::function<void(absl::StatusOr<std::optional<FailResult>>)>;
  WithRetries<FailResult>(
      [&redis, keys, base, now](Step next) {
        internal::ReadJobRows(
            redis, keys, {base.job_id},
            [&redis, keys, base, now, next](absl::StatusOr<std::vector<JobRow>> rows) {
              if (!rows.ok()) return next(rows.status());
              const JobRow& row = (*rows)[0];
              if (!row.exists) return next(internal::LeaseError(internal::LeaseRefusal::kNotFound));
              internal::FailCall call = base;
              call.request_id = row.request_id;
              call.pair = internal::PairOf(row.source, row.target);
              JobChange change = ChangeOf(row);
              change.failure_code = base.failure_code;
              const std::string id = EventIds(now).Next();
              const cv1::Actor actor = TranslatorActor(base.claimer);
              call.requeued_event = EventTail(id, cv1::EVENT_TYPE_TRANSLATION_JOB_FAILED, now,
                                              actor, base.failure_code, 0, &change);
              call.dead_event = EventTail(id, cv1::EVENT_TYPE_TRANSLATION_JOB_FAILED, now, actor,
                                          "DEAD_LETTER", 0, &change);
              internal::RunFail(redis, keys, call,
                                [id = base.job_id, next](absl::StatusOr<internal::LeaseResult> r) {
                                  if (!r.ok()) return next(r.status());
                                  if (r->retry) return next(std::optional<FailResult>());
                                  auto job = JobOrRefusal(id, *r);
                                  if (!job.ok()) return next(job.status());
                                  FailResult out;
                                  out.job = std::move(*job);
                                  out.replayed = r->outcome == "replayed";
                                  out.dead_lettered = r->outcome == "dead";
                                  next(std::optional<FailResult>(std::move(out)));
                                });
            });
      },
      std::move(done));
}

void RedisRoutingStore::SweepExpiredLeases(int shard, int max_attempts, int limit, absl::Time now,
                                           StoreCallback<SweepResult> done) {
  const ShardKeys keys(shard);
  common::RedisClient& redis = redis_;
  // The due leases, then their jobs (holders, queues and requests are keys). A job that
  // changed meanwhile is left for the next sweep, so no retry.
  internal::ReadDueLeases(
      redis, keys, Ms(now), limit,
      [&redis, keys, max_attempts, now, done](absl::StatusOr<std::vector<std::string>> ids) {
        if (!ids.ok()) return done(ids.status());
        if (ids->empty()) return done(SweepResult{});
        internal::ReadJobRows(
            redis, keys, *ids,
            [&redis, keys, max_attempts, now, done](absl::StatusOr<std::vector<JobRow>> rows) {
              if (!rows.ok()) return done(rows.status());
              internal::SweepCall call;
              call.now_ms = Ms(now);
              call.max_attempts = max_attempts;
              EventIds ids(now);
              for (const JobRow& row : *rows) {
                JobChange change = ChangeOf(row);
                change.failure_code = "LEASE_EXPIRED";
                const std::string id = ids.Next();
                call.jobs.push_back({row,
                                     EventTail(id, cv1::EVENT_TYPE_TRANSLATION_JOB_FAILED, now,
                                               ServiceActor(), "LEASE_EXPIRED", 0, &change),
                                     EventTail(id, cv1::EVENT_TYPE_TRANSLATION_JOB_FAILED, now,
                                               ServiceActor(), "DEAD_LETTER", 0, &change)});
              }
              internal::RunSweep(redis, keys, call, done);
            });
      });
}

void RedisRoutingStore::Stats(int shard, StoreCallback<ShardStats> done) {
  const ShardKeys keys(shard);
  common::RedisClient& redis = redis_;
  WithRetries<ShardStats>(
      [&redis, keys](std::function<void(absl::StatusOr<std::optional<ShardStats>>)> next) {
        internal::ReadPairs(redis, keys,
                            [&redis, keys, next](absl::StatusOr<std::vector<std::string>> pairs) {
                              if (!pairs.ok()) return next(pairs.status());
                              internal::RunShardStats(redis, keys, *pairs, next);
                            });
      },
      std::move(done));
}

}  // namespace rogatory::routing
