#include "deadline_service.h"

#include <algorithm>
#include <atomic>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "deadline_logic.h"
#include "rogatory/common/access.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/jwt.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/rpc_roles.h"
#include "rogatory/common/status.h"

namespace rogatory::deadlines {

using common::FieldViolations;
using common::v1::EventType;

namespace {

constexpr int kMaxAttempts = 5;
constexpr int kMaxNoteLength = 2000;
constexpr int kMaxCodeLength = 64;

// "dl-<shard>-<ulid>", derived from a seed (and a time that does not change between
// retries) so that a retry finds the same deadline.
std::string DerivedDeadlineId(int shard, const std::string& seed, absl::Time t) {
  return absl::StrCat("dl-", shard, "-", TimerEventId(seed, 0, t));
}

bool Contains(const google::protobuf::RepeatedField<int>& list, int value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

void CheckDeadlineId(const common::Sharding& sharding, const std::string& id,
                     const std::string& field, FieldViolations& v) {
  if (id.empty()) {
    v.Add(field, "is required");
  } else if (!sharding.ShardOf("dl", id).ok()) {
    v.Add(field, "is not a deadline id");
  }
}

void CheckCode(const std::string& code, const std::string& field, bool required,
               FieldViolations& v) {
  if (code.empty()) {
    if (required) v.Add(field, "is required");
  } else if (code.size() > kMaxCodeLength) {
    v.Add(field, "must be at most 64 characters");
  }
}

}  // namespace

struct MutateState {
  std::string deadline_id;
  std::string idempotency_key;
  std::string reason_code;
  DeadlineTracker::Change change;
  DeadlineTracker::DeadlineCallback done;
  std::string expected_etag;
  int attempt = 0;
};

void DeadlineTracker::Mutate(const std::string& deadline_id, const std::string& idempotency_key,
                             const std::string& reason_code, Change change, DeadlineCallback done,
                             const std::string& expected_etag) {
  auto state = std::make_shared<MutateState>();
  state->deadline_id = deadline_id;
  state->idempotency_key = idempotency_key;
  state->reason_code = reason_code;
  state->change = std::move(change);
  state->done = std::move(done);
  state->expected_etag = expected_etag;
  MutateAttempt(std::move(state));
}

void DeadlineTracker::MutateAttempt(std::shared_ptr<MutateState> state) {
  store_.Get(
      state->deadline_id,
      [this, state](absl::StatusOr<StoredDeadline> stored) {
        if (!stored.ok()) return state->done(stored.status());
        // Done before under this key: answer with the deadline as it is.
        if (stored->replayed) return state->done(stored->deadline);
        const std::string current_etag = DeadlineEtag(stored->version);
        if (!state->expected_etag.empty() && state->expected_etag != current_etag) {
          return state->done(
              common::StaleEtag(state->deadline_id, current_etag,
                                absl::StrCat("etag \"", state->expected_etag,
                                             "\" is stale; the deadline is now at \"", current_etag,
                                             "\": read it again and retry")));
        }
        v1::Deadline d = stored->deadline;
        auto type = state->change(d);
        if (!type.ok()) return state->done(type.status());
        if (*type == common::v1::EVENT_TYPE_UNSPECIFIED) return state->done(stored->deadline);
        const absl::Time now = clock_.Now();
        d.set_etag(DeadlineEtag(stored->version + 1));
        DeadlineWrite w{d, stored->version,
                        ChangeEvent(d, *type, now, common::NewUlid(now), state->reason_code)};
        w.stored_authority = IndexedAuthority(stored->deadline);
        auto shard = store_.ShardOfDeadline(d.id());
        if (!shard.ok()) return state->done(shard.status());
        CommitOptions options;
        options.idempotency_key = state->idempotency_key;
        store_.Commit(*shard, {std::move(w)}, options,
                      [this, state, d](absl::StatusOr<CommitOutcome> outcome) {
                        if (!outcome.ok()) return state->done(outcome.status());
                        switch (*outcome) {
                          case CommitOutcome::kOk:
                            return state->done(d);
                          case CommitOutcome::kReplayed:
                            // Done before under this key: answer with the deadline as it is.
                            return store_.Get(state->deadline_id,
                                              [state](absl::StatusOr<StoredDeadline> s) {
                                                if (!s.ok()) return state->done(s.status());
                                                state->done(s->deadline);
                                              });
                          case CommitOutcome::kConflict:
                            if (++state->attempt < kMaxAttempts) return MutateAttempt(state);
                            return state->done(
                                absl::AbortedError("the deadline changed concurrently; retry"));
                          default:
                            return state->done(absl::InternalError("unexpected commit outcome"));
                        }
                      });
      },
      state->idempotency_key);
}

CountingPlace DeadlineTracker::PlaceOf(const v1::Deadline& d) const {
  // The calendar that counted its first period (its zone as recorded, should the calendars
  // have changed since).
  const auto rules = rules_.Current();
  CountingPlace place = rules->calendars().PlaceOfCalendar(d.calendar_state(), d.calendar_region());
  place.owner = rules;
  absl::TimeZone tz;
  if (absl::LoadTimeZone(d.time_zone(), &tz)) {
    place.time_zone = tz;
    place.time_zone_name = d.time_zone();
  }
  return place;
}

void DeadlineTracker::Start(StartRequest request, DeadlineCallback done) {
  auto shard = store_.ShardOfRequest(request.request_id);
  if (!shard.ok()) return done(shard.status());
  const auto rules = rules_.Current();
  const v1::DeadlineRule* rule = rules->Find(request.rule_id);
  if (rule == nullptr) return done(absl::NotFoundError("no rule has this id"));
  const absl::Time now = clock_.Now();
  StartInput in;
  in.deadline_id = request.idempotency_key.empty()
                       ? common::Sharding::MakeId("dl", *shard, now)
                       : DerivedDeadlineId(*shard, request.idempotency_key, absl::UnixEpoch());
  in.request_id = request.request_id;
  in.trace_id = request.trace_id;
  in.rule = *rule;
  in.rules_version = rules->version();
  in.trigger_type = rule->trigger();
  in.trigger_time = request.trigger_time;
  in.place = rules->calendars().PlaceFor(request.executing_authority, request.requested_state);
  in.executing_authority_id = request.executing_authority.authority_id();
  in.instrument = request.instrument == common::v1::INSTRUMENT_UNSPECIFIED ? rule->instrument()
                                                                           : request.instrument;
  in.shortened_due = request.shortened_due;
  v1::Deadline d = NewDeadline(in);
  d.set_etag(DeadlineEtag(1));
  DeadlineWrite w{
      d, 0, ChangeEvent(d, common::v1::EVENT_TYPE_DEADLINE_STARTED, now, common::NewUlid(now), "")};
  const std::string id = d.id();
  store_.Commit(*shard, {std::move(w)}, {},
                [this, d, id, done](absl::StatusOr<CommitOutcome> outcome) {
                  if (!outcome.ok()) return done(outcome.status());
                  if (*outcome == CommitOutcome::kOk) return done(d);
                  if (*outcome == CommitOutcome::kExists) {
                    return store_.Get(id, [done](absl::StatusOr<StoredDeadline> s) {
                      if (!s.ok()) return done(s.status());
                      done(s->deadline);
                    });
                  }
                  done(absl::InternalError("unexpected commit outcome"));
                });
}

// ---------------------------------------------------------------------------------------
// The API.

namespace {

// Need-to-know (common/access.h): deadlines reach a caller through their request, whose
// parties deadline-tracking records from the events it receives. A deadline (or request)
// outside the caller's reach answers the NOT_FOUND of a missing one; which side of the
// request may make which change is the role table's (common/rpc_roles.h).
constexpr char kNoDeadline[] = "no deadline has this id";
constexpr char kNoRequest[] = "deadline-tracking knows no request with this id";

using AccessNext = std::function<void(absl::Status)>;

void CheckRequest(DeadlineStore& store, const common::CallContext& call,
                  const std::string& request_id, common::AccessKind kind,
                  const std::string& not_found, AccessNext next) {
  store.GetParties(request_id, [call, request_id, kind, not_found,
                                next](absl::StatusOr<std::optional<common::RequestParties>> p) {
    if (!p.ok()) return next(p.status());
    // The role table decides who may do what to a request's deadlines (rpc_roles.h): the
    // executing side completes, cancels and extends them, operators suspend and resume them.
    next(common::CheckRpcOnRequest(call, p->value_or(common::RequestParties{}), request_id, kind,
                                   not_found));
  });
}

// Checks the caller may do `kind` to a deadline's request; then `next` with the request id.
void CheckDeadline(DeadlineStore& store, const common::CallContext& call,
                   const std::string& deadline_id, common::AccessKind kind,
                   std::function<void(absl::StatusOr<std::string>)> next) {
  store.Get(deadline_id, [&store, call, kind, next](absl::StatusOr<StoredDeadline> s) {
    if (!s.ok()) return next(s.status());
    const std::string request_id = s->deadline.request_id();
    CheckRequest(store, call, request_id, kind, kNoDeadline, [request_id, next](absl::Status st) {
      if (!st.ok()) return next(st);
      next(request_id);
    });
  });
}

// A deadline change through the tracker, gated by need-to-know and noted on the audit trail
// once done. `request_id` is the caller's AIP-155 key (scoped to the caller).
void ChangeDeadline(DeadlineTracker& tracker, const common::CallContext& call,
                    const std::string& deadline_id, const std::string& request_id,
                    const std::string& reason_code, const std::string& etag,
                    DeadlineTracker::Change change, v1::Deadline* out,
                    common::Pipeline::Done done) {
  CheckDeadline(
      tracker.store(), call, deadline_id, common::AccessKind::kChange,
      [&tracker, call, deadline_id, request_id, reason_code, etag, change = std::move(change), out,
       done](absl::StatusOr<std::string> target) {
        if (!target.ok()) return done(target.status());
        const std::string key =
            request_id.empty() ? "" : absl::StrCat(call.caller.authority_id, "/", request_id);
        tracker.Mutate(
            deadline_id, key, reason_code, change,
            [call, deadline_id, target = *target, out, done](absl::StatusOr<v1::Deadline> d) {
              if (!d.ok()) return done(d.status());
              call.Touch(target, common::AccessKind::kChange, deadline_id);
              *out = *std::move(d);
              done(absl::OkStatus());
            },
            etag);
      });
}

}  // namespace

grpc::ServerUnaryReactor* DeadlineService::StartDeadline(grpc::CallbackServerContext* ctx,
                                                         const v1::StartDeadlineRequest* req,
                                                         v1::StartDeadlineResponse* resp) {
  return pipeline_.Unary<v1::StartDeadlineRequest, v1::StartDeadlineResponse>(
      ctx, "StartDeadline", req, resp,
      [this](const v1::StartDeadlineRequest& r) {
        FieldViolations v;
        if (r.target_request_id().empty()) {
          v.Add("target_request_id", "is required");
        } else if (!tracker_.store().ShardOfRequest(r.target_request_id()).ok()) {
          v.Add("target_request_id", "is not a request id");
        }
        if (r.rule_id().empty()) v.Add("rule_id", "is required");
        if (r.request_id().size() > 128) v.Add("request_id", "must be at most 128 characters");
        if (r.has_trigger_time() && r.trigger_time().seconds() <= 0) {
          v.Add("trigger_time", "must be after 1970");
        }
        if (!r.requested_state().empty() && r.requested_state().size() != 2) {
          v.Add("requested_state", "must be an ISO 3166-1 alpha-2 code");
        }
        return v.ToStatus();
      },
      [this](const common::CallContext& call, const v1::StartDeadlineRequest& r,
             v1::StartDeadlineResponse* out, common::Pipeline::Done done) {
        DeadlineTracker::StartRequest s;
        s.request_id = r.target_request_id();
        s.rule_id = r.rule_id();
        if (!r.request_id().empty()) {
          s.idempotency_key = absl::StrCat(call.caller.authority_id, "/", r.request_id());
        }
        s.trace_id = call.trace_id;
        s.trigger_time =
            r.has_trigger_time() ? FromProtoTime(r.trigger_time()) : tracker_.clock().Now();
        s.executing_authority = r.executing_authority();
        s.requested_state = r.requested_state();
        s.instrument = r.instrument();
        if (r.has_shortened_due_time()) s.shortened_due = FromProtoTime(r.shortened_due_time());
        CheckRequest(
            tracker_.store(), call, r.target_request_id(), common::AccessKind::kChange, kNoRequest,
            [this, call, s = std::move(s), out, done](absl::Status st) mutable {
              if (!st.ok()) return done(st);
              const std::string request_id = s.request_id;
              tracker_.Start(std::move(s),
                             [call, request_id, out, done](absl::StatusOr<v1::Deadline> d) {
                               if (!d.ok()) return done(d.status());
                               call.Touch(request_id, common::AccessKind::kChange, d->id());
                               *out->mutable_deadline() = *std::move(d);
                               done(absl::OkStatus());
                             });
            });
      });
}

grpc::ServerUnaryReactor* DeadlineService::ExtendDeadline(grpc::CallbackServerContext* ctx,
                                                          const v1::ExtendDeadlineRequest* req,
                                                          v1::ExtendDeadlineResponse* resp) {
  return pipeline_.Unary<v1::ExtendDeadlineRequest, v1::ExtendDeadlineResponse>(
      ctx, "ExtendDeadline", req, resp,
      [this](const v1::ExtendDeadlineRequest& r) {
        FieldViolations v;
        CheckDeadlineId(tracker_.store().sharding(), r.deadline_id(), "deadline_id", v);
        if (!r.has_by() || FromProtoDuration(r.by()) <= absl::ZeroDuration()) {
          v.Add("by", "must be positive");
        }
        CheckCode(r.reason_code(), "reason_code", true, v);
        if (r.note().size() > kMaxNoteLength) v.Add("note", "must be at most 2000 characters");
        return v.ToStatus();
      },
      [this](const common::CallContext& call, const v1::ExtendDeadlineRequest& r,
             v1::ExtendDeadlineResponse* out, common::Pipeline::Done done) {
        const absl::Duration by = FromProtoDuration(r.by());
        ChangeDeadline(
            tracker_, call, r.deadline_id(), r.request_id(), r.reason_code(), r.etag(),
            [this, by, reason = r.reason_code(), note = r.note()](v1::Deadline& d) {
              return Extend(d, by, reason, note, tracker_.clock().Now(), tracker_.PlaceOf(d));
            },
            out->mutable_deadline(), std::move(done));
      });
}

grpc::ServerUnaryReactor* DeadlineService::SuspendDeadline(grpc::CallbackServerContext* ctx,
                                                           const v1::SuspendDeadlineRequest* req,
                                                           v1::SuspendDeadlineResponse* resp) {
  return pipeline_.Unary<v1::SuspendDeadlineRequest, v1::SuspendDeadlineResponse>(
      ctx, "SuspendDeadline", req, resp,
      [this](const v1::SuspendDeadlineRequest& r) {
        FieldViolations v;
        CheckDeadlineId(tracker_.store().sharding(), r.deadline_id(), "deadline_id", v);
        CheckCode(r.reason_code(), "reason_code", true, v);
        return v.ToStatus();
      },
      [this](const common::CallContext& call, const v1::SuspendDeadlineRequest& r,
             v1::SuspendDeadlineResponse* out, common::Pipeline::Done done) {
        ChangeDeadline(
            tracker_, call, r.deadline_id(), r.request_id(), r.reason_code(), r.etag(),
            [this](v1::Deadline& d) { return Suspend(d, tracker_.clock().Now()); },
            out->mutable_deadline(), std::move(done));
      });
}

grpc::ServerUnaryReactor* DeadlineService::ResumeDeadline(grpc::CallbackServerContext* ctx,
                                                          const v1::ResumeDeadlineRequest* req,
                                                          v1::ResumeDeadlineResponse* resp) {
  return pipeline_.Unary<v1::ResumeDeadlineRequest, v1::ResumeDeadlineResponse>(
      ctx, "ResumeDeadline", req, resp,
      [this](const v1::ResumeDeadlineRequest& r) {
        FieldViolations v;
        CheckDeadlineId(tracker_.store().sharding(), r.deadline_id(), "deadline_id", v);
        CheckCode(r.reason_code(), "reason_code", true, v);
        return v.ToStatus();
      },
      [this](const common::CallContext& call, const v1::ResumeDeadlineRequest& r,
             v1::ResumeDeadlineResponse* out, common::Pipeline::Done done) {
        ChangeDeadline(
            tracker_, call, r.deadline_id(), r.request_id(), r.reason_code(), r.etag(),
            [this](v1::Deadline& d) { return Resume(d, tracker_.clock().Now()); },
            out->mutable_deadline(), std::move(done));
      });
}

grpc::ServerUnaryReactor* DeadlineService::CompleteDeadline(grpc::CallbackServerContext* ctx,
                                                            const v1::CompleteDeadlineRequest* req,
                                                            v1::CompleteDeadlineResponse* resp) {
  return pipeline_.Unary<v1::CompleteDeadlineRequest, v1::CompleteDeadlineResponse>(
      ctx, "CompleteDeadline", req, resp,
      [this](const v1::CompleteDeadlineRequest& r) {
        FieldViolations v;
        CheckDeadlineId(tracker_.store().sharding(), r.deadline_id(), "deadline_id", v);
        CheckCode(r.reason_code(), "reason_code", false, v);
        return v.ToStatus();
      },
      [this](const common::CallContext& call, const v1::CompleteDeadlineRequest& r,
             v1::CompleteDeadlineResponse* out, common::Pipeline::Done done) {
        ChangeDeadline(
            tracker_, call, r.deadline_id(), r.request_id(), r.reason_code(), r.etag(),
            [this](v1::Deadline& d) { return Complete(d, tracker_.clock().Now()); },
            out->mutable_deadline(), std::move(done));
      });
}

grpc::ServerUnaryReactor* DeadlineService::CancelDeadline(grpc::CallbackServerContext* ctx,
                                                          const v1::CancelDeadlineRequest* req,
                                                          v1::CancelDeadlineResponse* resp) {
  return pipeline_.Unary<v1::CancelDeadlineRequest, v1::CancelDeadlineResponse>(
      ctx, "CancelDeadline", req, resp,
      [this](const v1::CancelDeadlineRequest& r) {
        FieldViolations v;
        CheckDeadlineId(tracker_.store().sharding(), r.deadline_id(), "deadline_id", v);
        CheckCode(r.reason_code(), "reason_code", true, v);
        return v.ToStatus();
      },
      [this](const common::CallContext& call, const v1::CancelDeadlineRequest& r,
             v1::CancelDeadlineResponse* out, common::Pipeline::Done done) {
        ChangeDeadline(
            tracker_, call, r.deadline_id(), r.request_id(), r.reason_code(), r.etag(),
            [this](v1::Deadline& d) { return Cancel(d, tracker_.clock().Now()); },
            out->mutable_deadline(), std::move(done));
      });
}

grpc::ServerUnaryReactor* DeadlineService::GetDeadline(grpc::CallbackServerContext* ctx,
                                                       const v1::GetDeadlineRequest* req,
                                                       v1::GetDeadlineResponse* resp) {
  return pipeline_.Unary<v1::GetDeadlineRequest, v1::GetDeadlineResponse>(
      ctx, "GetDeadline", req, resp,
      [](const v1::GetDeadlineRequest& r) {
        FieldViolations v;
        if (r.deadline_id().empty()) v.Add("deadline_id", "is required");
        return v.ToStatus();
      },
      [this](const common::CallContext& call, const v1::GetDeadlineRequest& r,
             v1::GetDeadlineResponse* out, common::Pipeline::Done done) {
        tracker_.store().Get(r.deadline_id(), [this, call, out,
                                               done](absl::StatusOr<StoredDeadline> s) {
          if (!s.ok()) return done(s.status());
          const std::string request_id = s->deadline.request_id();
          CheckRequest(tracker_.store(), call, request_id, common::AccessKind::kRead, kNoDeadline,
                       [call, request_id, d = std::move(s->deadline), out, done](absl::Status st) {
                         if (!st.ok()) return done(st);
                         call.Touch(request_id, common::AccessKind::kRead, d.id());
                         *out->mutable_deadline() = d;
                         done(absl::OkStatus());
                       });
        });
      });
}

namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 500;

// The filters a page token is bound to: a token is only good for the filters it was issued
// under (page_size may change between pages).
std::string FilterDigest(const v1::ListDeadlinesRequest& r) {
  return common::Sha1Hex(absl::StrCat(r.target_request_id(), "\n", r.state(), "\n",
                                      r.has_due_before_time() ? r.due_before_time().seconds() : -1,
                                      ".",
                                      r.has_due_before_time() ? r.due_before_time().nanos() : -1,
                                      "\n", r.executing_authority_id()))
      .substr(0, 16);
}

// Opaque to callers: base64url of "1|<filter digest>|<due ms>|<deadline id>", the position
// after which the next page starts.
std::string EncodePageToken(const v1::ListDeadlinesRequest& r, const IndexCursor& after) {
  return common::Base64UrlEncode(
      absl::StrCat("1|", FilterDigest(r), "|", after.score, "|", after.id));
}

absl::StatusOr<IndexCursor> DecodePageToken(const v1::ListDeadlinesRequest& r) {
  auto bad = [](const std::string& why) {
    FieldViolations v;
    v.Add("page_token", why);
    return v.ToStatus();
  };
  absl::StatusOr<std::string> text = common::Base64UrlDecode(r.page_token());
  if (!text.ok()) return bad("is not a token this service issued");
  std::vector<std::string> parts = absl::StrSplit(*text, absl::MaxSplits('|', 3));
  IndexCursor c;
  if (parts.size() != 4 || parts[0] != "1" || !absl::SimpleAtoi(parts[2], &c.score) ||
      parts[3].empty() || parts[3].size() > 128) {
    return bad("is not a token this service issued");
  }
  if (parts[1] != FilterDigest(r)) {
    return bad("was issued for other filters; repeat the first request's filters");
  }
  c.id = parts[3];
  return c;
}

bool EntryBefore(const IndexEntry& a, const IndexEntry& b) {
  if (a.score != b.score) return a.score < b.score;
  return a.id < b.id;  // byte order, as Redis orders members of one score
}

struct ListState {
  absl::Mutex mu;
  std::vector<IndexEntry> found ABSL_GUARDED_BY(mu);
  bool more ABSL_GUARDED_BY(mu) = false;  // some shard may hold entries past its page
  absl::Status error ABSL_GUARDED_BY(mu);
  std::atomic<int> remaining{0};
  v1::ListDeadlinesRequest request;
  int page_size = kDefaultPageSize;
  v1::ListDeadlinesResponse* out = nullptr;
  common::Pipeline::Done done;
  // Need-to-know: when set, only deadlines of requests in this scope are kept.
  std::optional<common::ListScope> scope;
  DeadlineStore* store = nullptr;
  common::CallContext call;
  absl::flat_hash_map<std::string, bool> in_scope ABSL_GUARDED_BY(mu);
  std::atomic<int> pending_parties{0};
  // The page: the first `page_size` entries of all shards after the cursor.
  std::vector<IndexEntry> page;
  std::string next_page_token;

  // Once every shard answered: merges their pages into one, looks up the parties of the
  // requests on it (when scoped), then finishes.
  static void Scope(std::shared_ptr<ListState> state) {
    std::vector<std::string> ids;
    bool unscoped = false;
    {
      absl::MutexLock lock(&state->mu);
      if (state->error.ok()) {
        // Every shard returned its first `page_size` entries after the cursor, so the first
        // `page_size` of their union are the first of all: nothing past them is skipped.
        std::sort(state->found.begin(), state->found.end(), EntryBefore);
        const bool cut = static_cast<int>(state->found.size()) > state->page_size;
        if (cut) state->found.resize(state->page_size);
        if ((cut || state->more) && !state->found.empty()) {
          const IndexEntry& last = state->found.back();
          state->next_page_token =
              EncodePageToken(state->request, IndexCursor{last.score, last.id});
        }
        state->page = std::move(state->found);
      }
      unscoped = !state->error.ok() || !state->scope.has_value() || state->scope->all;
      if (!unscoped) {
        for (const auto& e : state->page) {
          if (!e.deadline) continue;
          const std::string& rid = e.deadline->deadline.request_id();
          if (state->in_scope.emplace(rid, false).second) ids.push_back(rid);
        }
      }
    }
    // Finish takes the lock itself.
    if (unscoped || ids.empty()) return state->Finish();
    state->pending_parties = static_cast<int>(ids.size());
    for (const std::string& id : ids) {
      state->store->GetParties(
          id, [state, id](absl::StatusOr<std::optional<common::RequestParties>> p) {
            {
              absl::MutexLock lock(&state->mu);
              if (!p.ok()) {
                state->error = p.status();
              } else {
                state->in_scope[id] = p->has_value() && common::InScope(*state->scope, **p);
              }
            }
            if (--state->pending_parties == 0) state->Finish();
          });
    }
  }

  // Answers the call with the page's deadlines that pass the filters (a page may hold fewer
  // than page_size, even none, and still have a next page); `done` runs without the lock.
  void Finish() {
    absl::Status failed;
    {
      absl::MutexLock lock(&mu);
      failed = error;
      if (failed.ok()) {
        for (auto& e : page) {
          if (!e.deadline) continue;  // an index entry that outlived its deadline
          v1::Deadline& d = e.deadline->deadline;
          if (request.state() != v1::DEADLINE_STATE_UNSPECIFIED && d.state() != request.state()) {
            continue;
          }
          if (scope.has_value() && !scope->all && !in_scope[d.request_id()]) continue;
          call.Touch(d.request_id(), common::AccessKind::kRead, d.id());
          *out->add_deadlines() = std::move(d);
        }
        out->set_next_page_token(next_page_token);
      }
    }
    if (!failed.ok()) return done(failed);
    done(absl::OkStatus());
  }
};

}  // namespace

grpc::ServerUnaryReactor* DeadlineService::ListDeadlines(grpc::CallbackServerContext* ctx,
                                                         const v1::ListDeadlinesRequest* req,
                                                         v1::ListDeadlinesResponse* resp) {
  return pipeline_.Unary<v1::ListDeadlinesRequest, v1::ListDeadlinesResponse>(
      ctx, "ListDeadlines", req, resp,
      [this](const v1::ListDeadlinesRequest& r) -> absl::Status {
        FieldViolations v;
        if (!r.target_request_id().empty() &&
            !tracker_.store().ShardOfRequest(r.target_request_id()).ok()) {
          v.Add("target_request_id", "is not a request id");
        }
        if (r.page_size() < 0 || r.page_size() > kMaxPageSize) {
          v.Add("page_size", absl::StrCat("must be 0 to ", kMaxPageSize));
        }
        if (r.executing_authority_id().size() > 128) {
          v.Add("executing_authority_id", "must be at most 128 characters");
        }
        RETURN_IF_ERROR(v.ToStatus());
        if (!r.page_token().empty()) return DecodePageToken(r).status();
        return absl::OkStatus();
      },
      [this](const common::CallContext& call, const v1::ListDeadlinesRequest& r,
             v1::ListDeadlinesResponse* out, common::Pipeline::Done done) {
        absl::StatusOr<common::ListScope> scope = common::ListScopeOf(call.caller);
        if (!scope.ok()) return done(scope.status());
        std::optional<IndexCursor> after;
        if (!r.page_token().empty()) {
          absl::StatusOr<IndexCursor> c = DecodePageToken(r);
          if (!c.ok()) return done(c.status());
          after = *std::move(c);
        }
        auto state = std::make_shared<ListState>();
        state->request = r;
        state->page_size = r.page_size() == 0 ? kDefaultPageSize : r.page_size();
        state->out = out;
        state->done = std::move(done);
        state->scope = *scope;
        state->store = &tracker_.store();
        state->call = call;
        // Due before: scores (due ms) strictly below it.
        const int64_t max_score =
            r.has_due_before_time()
                ? absl::ToUnixMillis(FromProtoTime(r.due_before_time()) - absl::Milliseconds(1))
                : int64_t{1} << 50;
        std::vector<std::pair<int, std::string>> sources;
        if (!r.target_request_id().empty()) {
          sources.emplace_back(*tracker_.store().ShardOfRequest(r.target_request_id()),
                               "byreq:" + r.target_request_id());
        } else {
          const std::string index =
              r.executing_authority_id().empty() ? "open" : "byauth:" + r.executing_authority_id();
          for (int s = 0; s < tracker_.store().sharding().shard_count(); ++s) {
            sources.emplace_back(s, index);
          }
        }
        state->remaining = static_cast<int>(sources.size());
        for (const auto& [shard, index] : sources) {
          // Each shard's first page_size entries after the cursor: bounded work per page.
          tracker_.store().ListIndexPage(shard, index, max_score, state->page_size, after,
                                         [state](absl::StatusOr<IndexPage> found) {
                                           {
                                             absl::MutexLock lock(&state->mu);
                                             if (!found.ok()) {
                                               state->error = found.status();
                                             } else {
                                               if (found->more) state->more = true;
                                               for (auto& e : found->entries)
                                                 state->found.push_back(std::move(e));
                                             }
                                           }
                                           if (--state->remaining == 0) ListState::Scope(state);
                                         });
        }
      });
}

grpc::ServerUnaryReactor* DeadlineService::GetDeadlineRules(grpc::CallbackServerContext* ctx,
                                                            const v1::GetDeadlineRulesRequest* req,
                                                            v1::GetDeadlineRulesResponse* resp) {
  return pipeline_.Unary<v1::GetDeadlineRulesRequest, v1::GetDeadlineRulesResponse>(
      ctx, "GetDeadlineRules", req, resp, nullptr,
      [this](const common::CallContext&, const v1::GetDeadlineRulesRequest& r,
             v1::GetDeadlineRulesResponse* out, common::Pipeline::Done done) {
        const auto rules = tracker_.rules().Current();
        for (const auto& rule : rules->file().rules()) {
          if (r.instrument() != common::v1::INSTRUMENT_UNSPECIFIED &&
              rule.instrument() != r.instrument()) {
            continue;
          }
          *out->add_rules() = rule;
        }
        out->set_rules_version(rules->version());
        done(absl::OkStatus());
      });
}

// ---------------------------------------------------------------------------------------
// Events.

struct HandleState {
  common::v1::Event event;
  common::Dedupe dedupe;
  std::function<void(absl::StatusOr<common::EventHandler::Outcome>)> done;
  int shard = 0;
  int attempt = 0;
};

void DeadlineEventHandler::Handle(const common::v1::Event& event, const common::Dedupe& dedupe,
                                  std::function<void(absl::StatusOr<Outcome>)> done) {
  auto state = std::make_shared<HandleState>();
  state->event = event;
  state->dedupe = dedupe;
  state->done = std::move(done);
  auto shard = tracker_.store().ShardOfRequest(event.request_id());
  if (!shard.ok()) {
    // Not a request of intake's: nothing to time. Recorded as handled.
    CommitOptions options;
    options.dedupe = &state->dedupe;
    tracker_.store().Commit(0, {}, options, [state](absl::StatusOr<CommitOutcome> o) {
      if (!o.ok()) return state->done(o.status());
      state->done(*o == CommitOutcome::kDuplicate ? Outcome::kDuplicate : Outcome::kHandled);
    });
    return;
  }
  state->shard = *shard;
  if (event.type() == common::v1::EVENT_TYPE_REQUEST_ERASED) {
    // Retention: intake erased the request; its deadlines go too.
    tracker_.store().EraseRequest(
        state->shard, event.request_id(), state->dedupe, [state](absl::StatusOr<CommitOutcome> o) {
          if (!o.ok()) return state->done(o.status());
          state->done(*o == CommitOutcome::kDuplicate ? Outcome::kDuplicate : Outcome::kHandled);
        });
    return;
  }
  Attempt(std::move(state));
}

void DeadlineEventHandler::Attempt(std::shared_ptr<HandleState> state) {
  tracker_.store().ListIndex(
      state->shard, "byreq:" + state->event.request_id(), absl::FromUnixSeconds(int64_t{1} << 40),
      1000, [this, state](absl::StatusOr<std::vector<StoredDeadline>> existing) {
        if (!existing.ok()) return state->done(existing.status());
        const common::v1::Event& e = state->event;
        const EventType type = e.type();
        const absl::Time now = tracker_.clock().Now();
        std::vector<DeadlineWrite> writes;
        std::set<std::string> open_rules, known_ids;
        for (const StoredDeadline& s : *existing) {
          known_ids.insert(s.deadline.id());
          if (!IsOpen(s.deadline.state())) continue;
          v1::Deadline d = s.deadline;
          absl::StatusOr<EventType> change = common::v1::EVENT_TYPE_UNSPECIFIED;
          std::string reason;
          if (Contains(d.rule().satisfied_by(), type)) {
            change = Complete(d, now);
            reason = common::v1::EventType_Name(type);
          } else if (Contains(d.rule().cancelled_by(), type) ||
                     type == common::v1::EVENT_TYPE_REQUEST_WITHDRAWN ||
                     type == common::v1::EVENT_TYPE_REQUEST_CLOSED) {
            change = Cancel(d, now);
            reason = common::v1::EventType_Name(type);
          } else if (type == common::v1::EVENT_TYPE_REQUEST_SUSPENDED &&
                     d.state() == v1::DEADLINE_STATE_RUNNING) {
            change = Suspend(d, now);
            reason = "REQUEST_SUSPENDED";
          } else if (type == common::v1::EVENT_TYPE_REQUEST_RESUMED &&
                     d.state() == v1::DEADLINE_STATE_SUSPENDED) {
            change = Resume(d, now);
            reason = "REQUEST_RESUMED";
          }
          if (!change.ok() || *change == common::v1::EVENT_TYPE_UNSPECIFIED) {
            open_rules.insert(d.rule_id());
            continue;
          }
          if (IsOpen(d.state())) open_rules.insert(d.rule_id());
          common::v1::Event out = ChangeEvent(d, *change, now, common::NewUlid(now), reason);
          out.set_trace_id(e.trace_id());
          // Receivers may get this before the triggering event (relays are independent):
          // the facts tell them whom the request concerns, as routing's events do.
          *out.mutable_request() = e.request();
          writes.push_back({std::move(d), s.version, std::move(out), IndexedAuthority(s.deadline)});
        }
        const auto rules = tracker_.rules().Current();
        const common::v1::RequestFacts& facts = e.request();
        for (const v1::DeadlineRule* rule :
             rules->TriggeredBy(type, e.instrument(), facts.urgency())) {
          if (open_rules.count(rule->id())) continue;  // already running for this request
          StartInput in;
          in.deadline_id =
              DerivedDeadlineId(state->shard, absl::StrCat(e.event_id(), "/", rule->id()),
                                FromProtoTime(e.occur_time()));
          if (known_ids.count(in.deadline_id)) continue;
          in.request_id = e.request_id();
          in.trace_id = e.trace_id();
          in.rule = *rule;
          in.rules_version = rules->version();
          in.trigger_type = type;
          in.trigger_time = e.has_occur_time() ? FromProtoTime(e.occur_time()) : now;
          in.place =
              rules->calendars().PlaceFor(facts.executing_authority(), facts.requested_state());
          in.executing_authority_id = facts.executing_authority().authority_id();
          in.instrument = e.instrument();
          if (rule->issuer_deadline_applies()) in.shortened_due = IssuerDue(facts, in.place);
          v1::Deadline d = NewDeadline(in);
          common::v1::Event out =
              ChangeEvent(d, common::v1::EVENT_TYPE_DEADLINE_STARTED, now, common::NewUlid(now),
                          common::v1::EventType_Name(type));
          *out.mutable_request() = facts;
          writes.push_back({std::move(d), 0, std::move(out)});
        }
        CommitOptions options;
        options.dedupe = &state->dedupe;
        // Need-to-know: remember who the request concerns, from the event's facts.
        if (e.has_request()) {
          options.parties_request_id = e.request_id();
          options.parties = common::PartiesOf(e.request());
        }
        tracker_.store().Commit(
            state->shard, std::move(writes), options,
            [this, state](absl::StatusOr<CommitOutcome> outcome) {
              if (!outcome.ok()) return state->done(outcome.status());
              switch (*outcome) {
                case CommitOutcome::kOk:
                  return state->done(Outcome::kHandled);
                case CommitOutcome::kDuplicate:
                  return state->done(Outcome::kDuplicate);
                case CommitOutcome::kConflict:
                case CommitOutcome::kExists:
                  if (++state->attempt < kMaxAttempts) return Attempt(state);
                  return state->done(absl::UnavailableError("deadlines changed concurrently"));
                default:
                  return state->done(absl::InternalError("unexpected commit outcome"));
              }
            });
      });
}

}  // namespace rogatory::deadlines
