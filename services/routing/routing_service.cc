#include "routing_service.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "queue_listing.h"
#include "rogatory/common/access.h"
#include "rogatory/common/codes.h"
#include "router.h"

namespace rogatory::routing {
namespace {

using common::CallContext;
using common::FieldViolations;
using common::Pipeline;
using google::protobuf::util::TimeUtil;

// ListDeclarations's page tokens: the last (state, instrument) listed, bound to the
// request's instrument filter.
using DeclarationKey = std::pair<std::string, int>;

std::string EncodeDeclarationsToken(const DeclarationKey& after,
                                    const v1::ListDeclarationsRequest& r) {
  return absl::WebSafeBase64Escape(
      absl::StrCat("d1|", after.first, "|", after.second, "|", static_cast<int>(r.instrument())));
}

absl::StatusOr<DeclarationKey> DecodeDeclarationsToken(const v1::ListDeclarationsRequest& r) {
  std::string raw;
  std::vector<std::string> parts;
  if (absl::WebSafeBase64Unescape(r.page_token(), &raw)) parts = absl::StrSplit(raw, '|');
  int instrument = 0, filter = -1;
  if (parts.size() != 4 || parts[0] != "d1" || parts[1].empty() ||
      !absl::SimpleAtoi(parts[2], &instrument) || !absl::SimpleAtoi(parts[3], &filter) ||
      filter != static_cast<int>(r.instrument())) {
    return absl::InvalidArgumentError("page_token");
  }
  return DeclarationKey{parts[1], instrument};
}

constexpr char kTranslatorRole[] = "translator";

absl::Status RequireTranslator(const CallContext& call) {
  if (!call.caller.HasRole(kTranslatorRole)) {
    return absl::PermissionDeniedError("only translators (role 'translator') work on jobs");
  }
  return absl::OkStatus();
}

void CheckJobId(const common::Sharding& sharding, const std::string& id, FieldViolations& v) {
  if (id.empty()) {
    v.Add("job_id", "is required");
  } else if (auto s = sharding.ShardOf("tj", id); !s.ok()) {
    v.Add("job_id", std::string(s.status().message()));
  }
}

bool IsSha256Hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  return true;
}

// The NOT_FOUND messages of a missing record, which a record outside the caller's reach
// answers too (need-to-know, common/access.h).
constexpr char kNoDecision[] = "no routing decision for that request yet";
constexpr char kNoJob[] = "no translation job has that id";
constexpr char kNoJobs[] = "routing knows no translation jobs for that request";

absl::Duration LeaseOf(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

void RoutingService::ValidateFacts(const v1::RoutingFacts& f, const std::string& prefix,
                                   FieldViolations& v) {
  const std::string p = prefix.empty() ? "" : prefix + ".";
  if (f.instrument() == common::v1::INSTRUMENT_UNSPECIFIED ||
      !common::v1::Instrument_IsValid(f.instrument())) {
    v.Add(p + "instrument", "is required");
  }
  if (!common::IsCountryCode(f.issuing_state())) {
    v.Add(p + "issuing_state", "must be an ISO 3166-1 alpha-2 code");
  }
  if (!common::IsCountryCode(f.requested_state())) {
    v.Add(p + "requested_state", "must be an ISO 3166-1 alpha-2 code");
  }
  if (!common::IsLanguageTag(f.source_language())) {
    v.Add(p + "source_language", "must be a BCP 47 language tag");
  }
  if (!common::v1::Urgency_IsValid(f.urgency())) v.Add(p + "urgency", "is not a known urgency");
  if (!f.region().empty() && (f.region().size() < 4 || f.region()[2] != '-' ||
                              f.region().substr(0, 2) != f.requested_state())) {
    v.Add(p + "region", "must be an ISO 3166-2 code of the requested state");
  }
  if (!f.enforcing_state().empty() && !common::IsCountryCode(f.enforcing_state())) {
    v.Add(p + "enforcing_state", "must be an ISO 3166-1 alpha-2 code");
  }
  if (f.service_provider().authority_id().size() > 128) {
    v.Add(p + "service_provider.authority_id", "must be at most 128 characters");
  }
}

grpc::ServerUnaryReactor* RoutingService::GetRoutingDecision(
    grpc::CallbackServerContext* ctx, const v1::GetRoutingDecisionRequest* req,
    v1::GetRoutingDecisionResponse* resp) {
  return pipeline_.Unary<v1::GetRoutingDecisionRequest, v1::GetRoutingDecisionResponse>(
      ctx, "GetRoutingDecision", req, resp,
      [this](const v1::GetRoutingDecisionRequest& r) {
        FieldViolations v;
        if (r.request_id().empty()) {
          v.Add("request_id", "is required");
        } else if (auto s = sharding_.ShardOf("rq", r.request_id()); !s.ok()) {
          v.Add("request_id", std::string(s.status().message()));
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::GetRoutingDecisionRequest& r,
             v1::GetRoutingDecisionResponse* out, Pipeline::Done done) {
        store_.GetParties(
            r.request_id(),
            [this, call, r, out, done](absl::StatusOr<std::optional<common::RequestParties>> p) {
              if (!p.ok()) return done(p.status());
              if (absl::Status s = common::CheckRequestAccess(
                      call, p->value_or(common::RequestParties{}), r.request_id(),
                      common::AccessKind::kRead, "routing decision", kNoDecision);
                  !s.ok()) {
                return done(s);
              }
              store_.GetDecision(r.request_id(),
                                 [out, done](absl::StatusOr<v1::RoutingDecision> d) {
                                   if (!d.ok()) return done(d.status());
                                   *out->mutable_decision() = *std::move(d);
                                   done(absl::OkStatus());
                                 });
            });
      });
}

grpc::ServerUnaryReactor* RoutingService::PreviewRouting(grpc::CallbackServerContext* ctx,
                                                         const v1::PreviewRoutingRequest* req,
                                                         v1::PreviewRoutingResponse* resp) {
  return pipeline_.Unary<v1::PreviewRoutingRequest, v1::PreviewRoutingResponse>(
      ctx, "PreviewRouting", req, resp,
      [](const v1::PreviewRoutingRequest& r) {
        FieldViolations v;
        if (!r.has_facts()) {
          v.Add("facts", "is required");
        } else {
          ValidateFacts(r.facts(), "facts", v);
        }
        return v.ToStatus();
      },
      [this](const CallContext&, const v1::PreviewRoutingRequest& r,
             v1::PreviewRoutingResponse* out, Pipeline::Done done) {
        *out->mutable_decision() = DecideRouting(r.facts(), *registry_.Get(), clock_.Now());
        done(absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* RoutingService::GetDeclaration(grpc::CallbackServerContext* ctx,
                                                         const v1::GetDeclarationRequest* req,
                                                         v1::GetDeclarationResponse* resp) {
  return pipeline_.Unary<v1::GetDeclarationRequest, v1::GetDeclarationResponse>(
      ctx, "GetDeclaration", req, resp,
      [](const v1::GetDeclarationRequest& r) {
        FieldViolations v;
        if (!common::IsCountryCode(r.state())) {
          v.Add("state", "must be an ISO 3166-1 alpha-2 code");
        }
        if (!common::v1::Instrument_IsValid(r.instrument())) {
          v.Add("instrument", "is not a known instrument");
        }
        return v.ToStatus();
      },
      [this](const CallContext&, const v1::GetDeclarationRequest& r,
             v1::GetDeclarationResponse* out, Pipeline::Done done) {
        auto registry = registry_.Get();
        out->set_registry_version(registry->version());
        for (const auto& d : registry->declarations()) {
          if (d.state() != r.state()) continue;
          if (r.instrument() != common::v1::INSTRUMENT_UNSPECIFIED &&
              d.instrument() != r.instrument()) {
            continue;
          }
          *out->add_declarations() = d;
        }
        if (out->declarations_size() == 0) {
          return done(absl::NotFoundError(registry->HasState(r.state())
                                              ? "the state declared nothing for that instrument"
                                              : "the registry holds no declaration of that state"));
        }
        done(absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* RoutingService::ListDeclarations(grpc::CallbackServerContext* ctx,
                                                           const v1::ListDeclarationsRequest* req,
                                                           v1::ListDeclarationsResponse* resp) {
  return pipeline_.Unary<v1::ListDeclarationsRequest, v1::ListDeclarationsResponse>(
      ctx, "ListDeclarations", req, resp,
      [](const v1::ListDeclarationsRequest& r) {
        FieldViolations v;
        if (!common::v1::Instrument_IsValid(r.instrument())) {
          v.Add("instrument", "is not a known instrument");
        }
        if (r.page_size() < 0 || r.page_size() > 500) v.Add("page_size", "must be from 0 to 500");
        if (!r.page_token().empty() && !DecodeDeclarationsToken(r).ok()) {
          v.Add("page_token", "is not a token this service issued for this instrument");
        }
        return v.ToStatus();
      },
      [this](const CallContext&, const v1::ListDeclarationsRequest& r,
             v1::ListDeclarationsResponse* out, Pipeline::Done done) {
        auto registry = registry_.Get();
        out->set_registry_version(registry->version());
        // Keyset pages over the registry's order (state, then instrument): a reload between
        // pages neither repeats nor skips what both versions hold.
        std::optional<DeclarationKey> after;
        if (!r.page_token().empty()) after = *DecodeDeclarationsToken(r);
        const int size = r.page_size() == 0 ? 50 : r.page_size();
        for (const auto& d : registry->declarations()) {
          if (r.instrument() != common::v1::INSTRUMENT_UNSPECIFIED &&
              d.instrument() != r.instrument()) {
            continue;
          }
          const DeclarationKey key{d.state(), static_cast<int>(d.instrument())};
          if (after.has_value() && !(*after < key)) continue;
          if (out->declarations_size() == size) {
            const v1::Declaration& last = out->declarations(size - 1);
            out->set_next_page_token(EncodeDeclarationsToken(
                DeclarationKey{last.state(), static_cast<int>(last.instrument())}, r));
            break;
          }
          *out->add_declarations() = d;
        }
        done(absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* RoutingService::ListTranslationJobs(
    grpc::CallbackServerContext* ctx, const v1::ListTranslationJobsRequest* req,
    v1::ListTranslationJobsResponse* resp) {
  return pipeline_.Unary<v1::ListTranslationJobsRequest, v1::ListTranslationJobsResponse>(
      ctx, "ListTranslationJobs", req, resp,
      [this](const v1::ListTranslationJobsRequest& r) {
        FieldViolations v;
        if (!v1::TranslationJobQueue_IsValid(r.queue())) v.Add("queue", "is not a known queue");
        const bool queue = r.queue() != v1::TRANSLATION_JOB_QUEUE_UNSPECIFIED;
        if (queue) {
          // A translator's queue: across requests, from the queue indexes.
          if (!r.request_id().empty()) {
            v.Add("request_id", "must be empty with queue (a queue spans requests)");
          }
          if (r.status() != v1::TRANSLATION_JOB_STATUS_UNSPECIFIED) {
            v.Add("status", "must be unspecified with queue (the queue decides it)");
          }
          for (int i = 0; i < r.source_languages_size(); ++i) {
            if (!common::IsLanguageTag(r.source_languages(i))) {
              v.Add(absl::StrCat("source_languages[", i, "]"), "must be a BCP 47 language tag");
            }
          }
          for (int i = 0; i < r.target_languages_size(); ++i) {
            if (!common::IsLanguageTag(r.target_languages(i))) {
              v.Add(absl::StrCat("target_languages[", i, "]"), "must be a BCP 47 language tag");
            }
          }
          if (std::max(1, r.source_languages_size()) * std::max(1, r.target_languages_size()) >
              kMaxLanguagePairs) {
            v.Add("target_languages", absl::StrCat("with source_languages, must make at most ",
                                                   kMaxLanguagePairs, " language pairs"));
          }
          if (!common::v1::Urgency_IsValid(r.urgency())) {
            v.Add("urgency", "is not a known urgency");
          }
          if (r.has_due_before() &&
              (r.due_before().seconds() < 0 || r.due_before().seconds() > 253402300799 ||
               r.due_before().nanos() < 0 || r.due_before().nanos() > 999999999)) {
            v.Add("due_before", "is not a valid time");
          }
          if (!r.page_token().empty() &&
              !DecodeQueueToken(r.page_token(), QueueFingerprint(r)).ok()) {
            v.Add("page_token", "is not a token from a previous response with the same filters");
          }
        } else {
          // A request's jobs, bounded by its documents.
          if (r.request_id().empty()) {
            v.Add("request_id", "is required unless queue is set (jobs are listed per request)");
          } else if (auto s = sharding_.ShardOf("rq", r.request_id()); !s.ok()) {
            v.Add("request_id", std::string(s.status().message()));
          }
          if (r.source_languages_size() > 0) v.Add("source_languages", "is only for queue");
          if (r.target_languages_size() > 0) v.Add("target_languages", "is only for queue");
          if (r.urgency() != common::v1::URGENCY_UNSPECIFIED) v.Add("urgency", "is only for queue");
          if (r.has_due_before()) v.Add("due_before", "is only for queue");
          int offset = 0;
          // Bounded so that offset + page size cannot overflow.
          if (!r.page_token().empty() &&
              (!absl::SimpleAtoi(r.page_token(), &offset) || offset < 0 || offset > 100'000'000)) {
            v.Add("page_token", "is not a token from a previous response");
          }
        }
        if (!v1::TranslationJobStatus_IsValid(r.status())) v.Add("status", "is not a known status");
        if (!r.target_language().empty() && !common::IsLanguageTag(r.target_language())) {
          v.Add("target_language", "must be a BCP 47 language tag");
        }
        if (r.page_size() < 0 || r.page_size() > 500) v.Add("page_size", "must be 0 to 500");
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::ListTranslationJobsRequest& r,
             v1::ListTranslationJobsResponse* out, Pipeline::Done done) {
        if (r.queue() != v1::TRANSLATION_JOB_QUEUE_UNSPECIFIED) {
          return ListQueue(call, r, out, std::move(done));
        }
        // Need-to-know: the request's parties, auditors and services see every job of a
        // request routing knows; a translator only the jobs it holds (NOT_FOUND if none);
        // anyone else NOT_FOUND, as for a request routing never heard of.
        store_.GetParties(
            r.request_id(),
            [this, call, r, out, done](absl::StatusOr<std::optional<common::RequestParties>> p) {
              if (!p.ok()) return done(p.status());
              if (!p->has_value()) return done(common::RequestNotFound(r.request_id(), kNoJobs));
              const bool all = common::ReachOf(call.caller, **p) != common::Reach::kNone;
              const std::string holder = call.caller.HasRole(common::kRoleTranslator)
                                             ? call.caller.authority_id
                                             : std::string();
              if (!all && holder.empty())
                return done(common::RequestNotFound(r.request_id(), kNoJobs));
              store_.ListJobsOfRequest(
                  r.request_id(), [call, r, all, holder, out,
                                   done](absl::StatusOr<std::vector<v1::TranslationJob>> jobs) {
                    if (!jobs.ok()) return done(jobs.status());
                    std::vector<v1::TranslationJob> kept;
                    for (auto& j : *jobs) {
                      if (!all && j.claimed_by() != holder) continue;
                      if (r.status() != v1::TRANSLATION_JOB_STATUS_UNSPECIFIED &&
                          j.status() != r.status())
                        continue;
                      if (!r.target_language().empty() &&
                          j.target_language() != r.target_language())
                        continue;
                      kept.push_back(std::move(j));
                    }
                    // Most urgent first: urgency, then due time, then id (stable pages).
                    std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
                      auto key = [](const v1::TranslationJob& j) {
                        const int64_t due = j.has_due_time()
                                                ? TimeUtil::TimestampToMilliseconds(j.due_time())
                                                : INT64_MAX;
                        return std::make_tuple(-static_cast<int>(j.urgency()), due, j.id());
                      };
                      return key(a) < key(b);
                    });
                    int offset = 0;
                    (void)absl::SimpleAtoi(r.page_token(), &offset);
                    const int size = r.page_size() == 0 ? 50 : r.page_size();
                    for (int i = offset; i < static_cast<int>(kept.size()) && i < offset + size;
                         ++i) {
                      *out->add_jobs() = kept[i];
                    }
                    if (offset + size < static_cast<int>(kept.size())) {
                      out->set_next_page_token(absl::StrCat(offset + size));
                    }
                    if (!all && kept.empty() &&
                        std::none_of(jobs->begin(), jobs->end(), [&](const v1::TranslationJob& j) {
                          return j.claimed_by() == holder;
                        })) {
                      return done(common::RequestNotFound(r.request_id(), kNoJobs));
                    }
                    call.Touch(r.request_id(), common::AccessKind::kRead, "translation jobs");
                    done(absl::OkStatus());
                  });
            });
      });
}

void RoutingService::ListQueue(const CallContext& call, const v1::ListTranslationJobsRequest& r,
                               v1::ListTranslationJobsResponse* out, Pipeline::Done done) {
  if (absl::Status s = QueueListAccess(call.caller, r.queue()); !s.ok()) return done(s);
  QueueListSpec spec;
  spec.held = r.queue() == v1::TRANSLATION_JOB_QUEUE_HELD;
  spec.holder = call.caller.authority_id;
  spec.sources.assign(r.source_languages().begin(), r.source_languages().end());
  spec.targets.assign(r.target_languages().begin(), r.target_languages().end());
  if (!r.target_language().empty()) {
    // The single-language filter narrows the list (or stands alone).
    if (spec.targets.empty() || std::find(spec.targets.begin(), spec.targets.end(),
                                          r.target_language()) != spec.targets.end()) {
      spec.targets = {r.target_language()};
    } else {
      return done(absl::OkStatus());  // the filters exclude each other: nothing to list
    }
  }
  spec.urgency = r.urgency();
  if (r.has_due_before()) {
    spec.due_before = absl::FromUnixMillis(TimeUtil::TimestampToMilliseconds(r.due_before()));
  }
  spec.page_size = r.page_size() == 0 ? 50 : r.page_size();
  const std::string fingerprint = QueueFingerprint(r);
  if (!r.page_token().empty()) {
    auto cursor = DecodeQueueToken(r.page_token(), fingerprint);
    if (!cursor.ok()) return done(cursor.status());
    spec.after = *cursor;
  }
  // Claimable jobs show their non-personal metadata only, to anyone but a service; a
  // translator's held jobs are its own, in full (it may read them, see GetTranslationJob).
  const bool redact = !spec.held && !call.caller.is_service;
  store_.ListQueue(spec,
                   [call, redact, fingerprint, out, done](absl::StatusOr<QueueListPage> page) {
                     if (!page.ok()) return done(page.status());
                     for (auto& job : page->jobs) {
                       if (redact) {
                         *out->add_jobs() = ClaimableView(job);
                       } else {
                         // Held jobs are the caller's own; each read is on the audit trail.
                         call.Touch(job.request_id(), common::AccessKind::kRead, job.id());
                         *out->add_jobs() = std::move(job);
                       }
                     }
                     if (page->next)
                       out->set_next_page_token(EncodeQueueToken(*page->next, fingerprint));
                     done(absl::OkStatus());
                   });
}

grpc::ServerUnaryReactor* RoutingService::GetTranslationJob(grpc::CallbackServerContext* ctx,
                                                            const v1::GetTranslationJobRequest* req,
                                                            v1::GetTranslationJobResponse* resp) {
  return pipeline_.Unary<v1::GetTranslationJobRequest, v1::GetTranslationJobResponse>(
      ctx, "GetTranslationJob", req, resp,
      [this](const v1::GetTranslationJobRequest& r) {
        FieldViolations v;
        CheckJobId(sharding_, r.job_id(), v);
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::GetTranslationJobRequest& r,
             v1::GetTranslationJobResponse* out, Pipeline::Done done) {
        store_.GetJob(r.job_id(), [this, call, out, done](absl::StatusOr<v1::TranslationJob> j) {
          if (!j.ok()) return done(j.status());
          // Need-to-know: the translator holding the job, or whoever reaches its request.
          const std::string request_id = j->request_id();
          store_.GetParties(
              request_id, [call, job = *std::move(j), out,
                           done](absl::StatusOr<std::optional<common::RequestParties>> p) {
                if (!p.ok()) return done(p.status());
                if (absl::Status s = common::CheckTranslatorAccess(
                        call, p->value_or(common::RequestParties{}), job.claimed_by(),
                        job.request_id(), common::AccessKind::kRead, job.id(), kNoJob);
                    !s.ok()) {
                  return done(s);
                }
                *out->mutable_job() = job;
                done(absl::OkStatus());
              });
        });
      });
}

grpc::ServerUnaryReactor* RoutingService::ClaimTranslationJob(
    grpc::CallbackServerContext* ctx, const v1::ClaimTranslationJobRequest* req,
    v1::ClaimTranslationJobResponse* resp) {
  return pipeline_.Unary<v1::ClaimTranslationJobRequest, v1::ClaimTranslationJobResponse>(
      ctx, "ClaimTranslationJob", req, resp,
      [](const v1::ClaimTranslationJobRequest& r) {
        FieldViolations v;
        if (r.request_id().size() > 128) v.Add("request_id", "must be at most 128 characters");
        if (r.source_languages_size() == 0) v.Add("source_languages", "must list at least one");
        if (r.target_languages_size() == 0) v.Add("target_languages", "must list at least one");
        for (int i = 0; i < r.source_languages_size(); ++i) {
          if (!common::IsLanguageTag(r.source_languages(i))) {
            v.Add(absl::StrCat("source_languages[", i, "]"), "must be a BCP 47 language tag");
          }
        }
        for (int i = 0; i < r.target_languages_size(); ++i) {
          if (!common::IsLanguageTag(r.target_languages(i))) {
            v.Add(absl::StrCat("target_languages[", i, "]"), "must be a BCP 47 language tag");
          }
        }
        if (r.source_languages_size() * r.target_languages_size() > kMaxLanguagePairs) {
          v.Add("target_languages", absl::StrCat("with source_languages, must make at most ",
                                                 kMaxLanguagePairs, " language pairs"));
        }
        if (r.has_lease_duration()) {
          const absl::Duration d = LeaseOf(r.lease_duration());
          if (d < absl::Minutes(1) || d > absl::Hours(24)) {
            v.Add("lease_duration", "must be 1 minute to 24 hours");
          }
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::ClaimTranslationJobRequest& r,
             v1::ClaimTranslationJobResponse* out, Pipeline::Done done) {
        if (auto s = RequireTranslator(call); !s.ok()) return done(s);
        ClaimSpec spec;
        spec.claimer = call.caller.authority_id;
        spec.lease = r.has_lease_duration() ? LeaseOf(r.lease_duration()) : absl::Minutes(30);
        spec.request_id = r.request_id();
        for (const auto& s : r.source_languages()) {
          for (const auto& t : r.target_languages()) {
            if (s != t) spec.pairs.push_back({s, t});
          }
        }
        store_.Claim(spec, clock_.Now(),
                     [call, out, done, metrics = metrics_](absl::StatusOr<v1::TranslationJob> j) {
                       if (!j.ok()) return done(j.status());
                       call.Touch(j->request_id(), common::AccessKind::kChange, j->id());
                       if (metrics) metrics->Claimed();
                       *out->mutable_job() = *std::move(j);
                       done(absl::OkStatus());
                     });
      });
}

grpc::ServerUnaryReactor* RoutingService::HeartbeatTranslationJob(
    grpc::CallbackServerContext* ctx, const v1::HeartbeatTranslationJobRequest* req,
    v1::HeartbeatTranslationJobResponse* resp) {
  return pipeline_.Unary<v1::HeartbeatTranslationJobRequest, v1::HeartbeatTranslationJobResponse>(
      ctx, "HeartbeatTranslationJob", req, resp,
      [this](const v1::HeartbeatTranslationJobRequest& r) {
        FieldViolations v;
        CheckJobId(sharding_, r.job_id(), v);
        if (r.lease_token() <= 0) v.Add("lease_token", "is required");
        if (r.has_lease_duration()) {
          const absl::Duration d = LeaseOf(r.lease_duration());
          if (d < absl::Minutes(1) || d > absl::Hours(24)) {
            v.Add("lease_duration", "must be 1 minute to 24 hours");
          }
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::HeartbeatTranslationJobRequest& r,
             v1::HeartbeatTranslationJobResponse* out, Pipeline::Done done) {
        if (auto s = RequireTranslator(call); !s.ok()) return done(s);
        store_.Heartbeat(
            r.job_id(), r.lease_token(), call.caller.authority_id,
            r.has_lease_duration() ? LeaseOf(r.lease_duration()) : absl::ZeroDuration(),
            clock_.Now(), [call, out, done](absl::StatusOr<v1::TranslationJob> j) {
              if (!j.ok()) return done(j.status());
              call.Touch(j->request_id(), common::AccessKind::kChange, j->id());
              *out->mutable_job() = *std::move(j);
              done(absl::OkStatus());
            });
      });
}

grpc::ServerUnaryReactor* RoutingService::CompleteTranslationJob(
    grpc::CallbackServerContext* ctx, const v1::CompleteTranslationJobRequest* req,
    v1::CompleteTranslationJobResponse* resp) {
  return pipeline_.Unary<v1::CompleteTranslationJobRequest, v1::CompleteTranslationJobResponse>(
      ctx, "CompleteTranslationJob", req, resp,
      [this](const v1::CompleteTranslationJobRequest& r) {
        FieldViolations v;
        CheckJobId(sharding_, r.job_id(), v);
        if (r.lease_token() <= 0) v.Add("lease_token", "is required");
        if (r.translated_document_id().empty() || r.translated_document_id().size() > 128) {
          v.Add("translated_document_id", "is required, up to 128 characters");
        }
        if (!IsSha256Hex(r.translated_document_sha256())) {
          v.Add("translated_document_sha256", "must be 64 hexadecimal digits");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::CompleteTranslationJobRequest& r,
             v1::CompleteTranslationJobResponse* out, Pipeline::Done done) {
        if (auto s = RequireTranslator(call); !s.ok()) return done(s);
        store_.Complete(r.job_id(), r.lease_token(), call.caller.authority_id,
                        r.translated_document_id(),
                        absl::AsciiStrToLower(r.translated_document_sha256()), clock_.Now(),
                        [call, out, done, metrics = metrics_](absl::StatusOr<CompleteResult> c) {
                          if (!c.ok()) return done(c.status());
                          call.Touch(c->job.request_id(), common::AccessKind::kChange, c->job.id());
                          if (metrics && !c->replayed) metrics->Completed(c->turnaround);
                          *out->mutable_job() = std::move(c->job);
                          done(absl::OkStatus());
                        });
      });
}

grpc::ServerUnaryReactor* RoutingService::FailTranslationJob(
    grpc::CallbackServerContext* ctx, const v1::FailTranslationJobRequest* req,
    v1::FailTranslationJobResponse* resp) {
  return pipeline_.Unary<v1::FailTranslationJobRequest, v1::FailTranslationJobResponse>(
      ctx, "FailTranslationJob", req, resp,
      [this](const v1::FailTranslationJobRequest& r) {
        FieldViolations v;
        CheckJobId(sharding_, r.job_id(), v);
        if (r.lease_token() <= 0) v.Add("lease_token", "is required");
        if (r.failure_code().empty() || r.failure_code().size() > 64) {
          v.Add("failure_code", "is required, up to 64 characters");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::FailTranslationJobRequest& r,
             v1::FailTranslationJobResponse* out, Pipeline::Done done) {
        if (auto s = RequireTranslator(call); !s.ok()) return done(s);
        store_.Fail(r.job_id(), r.lease_token(), call.caller.authority_id, r.failure_code(),
                    r.retryable(), settings_.max_attempts, clock_.Now(),
                    [call, out, done, metrics = metrics_](absl::StatusOr<FailResult> f) {
                      if (!f.ok()) return done(f.status());
                      call.Touch(f->job.request_id(), common::AccessKind::kChange, f->job.id());
                      if (metrics && f->dead_lettered && !f->replayed) metrics->DeadLettered(1);
                      *out->mutable_job() = std::move(f->job);
                      done(absl::OkStatus());
                    });
      });
}

}  // namespace rogatory::routing
