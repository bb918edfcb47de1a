#include "rogatory/common/audit_service.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "rogatory/common/denial_log.h"

namespace rogatory::common {
namespace {

namespace adminpb = rogatory::admin::v1;
using google::protobuf::util::TimeUtil;

constexpr size_t kMaxRequestIdLength = 128;

void CheckRequestId(const std::string& id, FieldViolations& v) {
  if (id.empty()) {
    v.Add("request_id", "is required");
  } else if (id.size() > kMaxRequestIdLength) {
    v.Add("request_id", absl::StrCat("must be at most ", kMaxRequestIdLength, " characters"));
  }
}

// 64 lower-case hex digits, after "<key id>:" when the key is not the "default" one.
bool IsHexMac(std::string mac) {
  const size_t colon = mac.find(':');
  if (colon != std::string::npos) {
    if (colon == 0 || colon > 64) return false;
    mac.erase(0, colon + 1);
  }
  if (mac.size() != 64) return false;
  for (char c : mac) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) ||
        absl::ascii_isupper(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

adminpb::AuditAccessKind KindOf(const std::string& kind) {
  if (kind == "read") return adminpb::AUDIT_ACCESS_KIND_READ;
  if (kind == "change") return adminpb::AUDIT_ACCESS_KIND_CHANGE;
  if (kind == "disclose") return adminpb::AUDIT_ACCESS_KIND_DISCLOSE;
  return adminpb::AUDIT_ACCESS_KIND_UNSPECIFIED;
}

// A page token of ListDenials: the stream id of the last record given, "<ms>-<seq>".
bool IsStreamId(const std::string& token) {
  std::vector<std::string> parts = absl::StrSplit(token, '-');
  uint64_t n = 0;
  return token.size() <= 48 && parts.size() == 2 && absl::SimpleAtoi(parts[0], &n) &&
         absl::SimpleAtoi(parts[1], &n);
}

}  // namespace

void FillVerifyAuditChainResponse(const AuditChainVerdict& verdict,
                                  adminpb::VerifyAuditChainResponse* resp) {
  if (!verdict.intact) {
    resp->set_verdict(adminpb::AUDIT_VERDICT_TAMPERED);
  } else if (verdict.anchor.has_value()) {
    // Checked before EMPTY: a chain that retention erased entirely (the anchor alone is
    // left) is not a chain that never had an entry.
    resp->set_verdict(adminpb::AUDIT_VERDICT_INTACT_SINCE_ANCHOR);
  } else if (verdict.entries_checked == 0 && verdict.head.sequence == 0) {
    resp->set_verdict(adminpb::AUDIT_VERDICT_EMPTY);
  } else {
    resp->set_verdict(adminpb::AUDIT_VERDICT_INTACT);
  }
  resp->set_entries_checked(verdict.entries_checked);
  resp->set_first_sequence(verdict.first_sequence);
  resp->mutable_head()->set_sequence(verdict.head.sequence);
  resp->mutable_head()->set_mac(verdict.head.chain_mac);
  resp->set_first_bad_sequence(verdict.first_bad_sequence);
  resp->set_problem(verdict.problem);
  if (verdict.anchor.has_value()) {
    const AuditAnchor& a = *verdict.anchor;
    adminpb::AuditRetentionAnchor* out = resp->mutable_retention_anchor();
    out->set_first_erased_sequence(1);
    out->set_last_erased_sequence(a.sequence);
    out->set_chain_mac(a.chain_mac);
    *out->mutable_erased_before() = TimeUtil::MicrosecondsToTimestamp(a.erased_before_us);
    out->set_mac(a.mac);
  }
}

AuditServiceImpl::AuditServiceImpl(Pipeline& pipeline, RedisClient& redis, const Sharding& sharding,
                                   std::shared_ptr<const AuditKey> key, int max_queued)
    : pipeline_(pipeline),
      redis_(redis),
      sharding_(sharding),
      key_(std::move(key)),
      max_queued_(static_cast<size_t>(max_queued)) {
  worker_ = std::thread([this] { Work(); });
}

AuditServiceImpl::~AuditServiceImpl() { Stop(); }

void AuditServiceImpl::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
  }
  worker_.join();
}

void AuditServiceImpl::Work() {
  for (;;) {
    Job job;
    bool stopping = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](AuditServiceImpl* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stop_ || !self->jobs_.empty();
          },
          this));
      if (jobs_.empty()) return;  // stopping, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
      stopping = stop_;
    }
    job(stopping);
  }
}

absl::Status AuditServiceImpl::Enqueue(Job job) {
  absl::MutexLock lock(&mu_);
  if (stop_) return absl::UnavailableError("the server is stopping");
  if (jobs_.size() >= max_queued_) {
    return absl::ResourceExhaustedError("too many audit verifications at once; retry later");
  }
  jobs_.push_back(std::move(job));
  return absl::OkStatus();
}

absl::Status AuditServiceImpl::Permitted(const CallContext& call) const {
  if (!call.caller.HasRole("auditor") && !call.caller.HasRole("operator")) {
    return absl::PermissionDeniedError("the audit log is open to auditors and operators only");
  }
  if (key_ == nullptr) {
    return absl::FailedPreconditionError(
        "the chained audit log is disabled on this service (audit=log)");
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AuditServiceImpl::VerifyAuditChain(
    grpc::CallbackServerContext* context, const adminpb::VerifyAuditChainRequest* request,
    adminpb::VerifyAuditChainResponse* response) {
  return pipeline_.Unary<adminpb::VerifyAuditChainRequest, adminpb::VerifyAuditChainResponse>(
      context, "VerifyAuditChain", request, response,
      [](const adminpb::VerifyAuditChainRequest& req) {
        FieldViolations v;
        CheckRequestId(req.request_id(), v);
        if (req.has_expected_head()) {
          if (req.expected_head().sequence() < 1) {
            v.Add("expected_head.sequence", "must be at least 1");
          }
          if (!IsHexMac(req.expected_head().mac())) {
            v.Add("expected_head.mac",
                  "must be 64 lower-case hex digits (after \"<key id>:\" unless the key is "
                  "\"default\")");
          }
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const adminpb::VerifyAuditChainRequest& req,
             adminpb::VerifyAuditChainResponse* resp, Pipeline::Done done) {
        if (absl::Status s = Permitted(call); !s.ok()) return done(s);
        call.Touch(req.request_id(), AccessKind::kRead, "audit-log");
        std::optional<AuditChainHead> expected;
        if (req.has_expected_head()) {
          expected = AuditChainHead{req.expected_head().sequence(), req.expected_head().mac()};
        }
        absl::Status queued =
            Enqueue([this, id = req.request_id(), expected, resp, done](bool stopping) {
              if (stopping) return done(absl::UnavailableError("the server is stopping"));
              auto verdict =
                  rogatory::common::VerifyAuditChain(redis_, sharding_, *key_, id, expected);
              if (!verdict.ok()) return done(verdict.status());
              FillVerifyAuditChainResponse(*verdict, resp);
              done(absl::OkStatus());
            });
        if (!queued.ok()) done(queued);
      });
}

grpc::ServerUnaryReactor* AuditServiceImpl::ListAuditEntries(
    grpc::CallbackServerContext* context, const adminpb::ListAuditEntriesRequest* request,
    adminpb::ListAuditEntriesResponse* response) {
  return pipeline_.Unary<adminpb::ListAuditEntriesRequest, adminpb::ListAuditEntriesResponse>(
      context, "ListAuditEntries", request, response,
      [](const adminpb::ListAuditEntriesRequest& req) {
        FieldViolations v;
        CheckRequestId(req.request_id(), v);
        if (req.page_size() < 0 || req.page_size() > 1000) {
          v.Add("page_size", "must be between 0 and 1000");
        }
        int64_t from = 0;
        if (!req.page_token().empty() && (!absl::SimpleAtoi(req.page_token(), &from) || from < 1)) {
          v.Add("page_token", "is not a token from a previous response");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const adminpb::ListAuditEntriesRequest& req,
             adminpb::ListAuditEntriesResponse* resp, Pipeline::Done done) {
        if (absl::Status s = Permitted(call); !s.ok()) return done(s);
        call.Touch(req.request_id(), AccessKind::kRead, "audit-log");
        int64_t from = 0;
        if (!req.page_token().empty()) (void)absl::SimpleAtoi(req.page_token(), &from);
        const int page_size = req.page_size() == 0 ? 100 : req.page_size();
        absl::Status queued = Enqueue([this, id = req.request_id(), from, page_size, resp,
                                       done](bool stopping) {
          if (stopping) return done(absl::UnavailableError("the server is stopping"));
          auto page = rogatory::common::ListAuditEntries(redis_, sharding_, id, from, page_size);
          if (!page.ok()) return done(page.status());
          for (size_t i = 0; i < page->entries.size(); ++i) {
            const SealedAuditEntry& sealed = page->entries[i];
            const AuditEntry& e = page->decoded[i];
            adminpb::AuditEntry* out = resp->add_entries();
            out->set_sequence(sealed.sequence);
            out->set_entry_id(e.entry_id);
            *out->mutable_time() = TimeUtil::MicrosecondsToTimestamp(e.time_us);
            out->set_method(e.method);
            out->set_caller_authority_id(e.caller);
            out->set_caller_state(e.caller_state);
            for (absl::string_view role : absl::StrSplit(e.caller_roles, ',', absl::SkipEmpty())) {
              out->add_caller_roles(std::string(role));
            }
            out->set_caller_is_service(e.caller_is_service);
            out->set_kind(KindOf(e.kind));
            out->set_detail(e.detail);
            out->set_justification(e.justification);
            out->set_outcome(e.outcome);
            out->set_trace_id(e.trace_id);
            out->set_mac(sealed.chain_mac);
          }
          if (page->next_sequence > 0) {
            resp->set_next_page_token(absl::StrCat(page->next_sequence));
          }
          done(absl::OkStatus());
        });
        if (!queued.ok()) done(queued);
      });
}

grpc::ServerUnaryReactor* AuditServiceImpl::ListDenials(grpc::CallbackServerContext* context,
                                                        const adminpb::ListDenialsRequest* request,
                                                        adminpb::ListDenialsResponse* response) {
  return pipeline_.Unary<adminpb::ListDenialsRequest, adminpb::ListDenialsResponse>(
      context, "ListDenials", request, response,
      [](const adminpb::ListDenialsRequest& req) {
        FieldViolations v;
        if (req.authority_id().empty()) {
          v.Add("authority_id", "is required");
        } else if (req.authority_id().size() > kMaxRequestIdLength) {
          v.Add("authority_id",
                absl::StrCat("must be at most ", kMaxRequestIdLength, " characters"));
        }
        if (req.page_size() < 0 || req.page_size() > 1000) {
          v.Add("page_size", "must be between 0 and 1000");
        }
        if (!req.page_token().empty() && !IsStreamId(req.page_token())) {
          v.Add("page_token", "is not a token from a previous response");
        }
        if (req.has_start_time() && req.has_end_time() &&
            TimeUtil::TimestampToMicroseconds(req.end_time()) <=
                TimeUtil::TimestampToMicroseconds(req.start_time())) {
          v.Add("end_time", "must be after start_time");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const adminpb::ListDenialsRequest& req,
             adminpb::ListDenialsResponse* resp, Pipeline::Done done) {
        // The role table lets only auditors and operators in (rpc_roles.h); said again here
        // for pipelines without the gate.
        if (!call.caller.HasRole("auditor") && !call.caller.HasRole("operator")) {
          return done(
              absl::PermissionDeniedError("the denial log is open to auditors and operators only"));
        }
        const absl::Time from =
            req.has_start_time()
                ? absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(req.start_time()))
                : absl::InfinitePast();
        const absl::Time to =
            req.has_end_time()
                ? absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(req.end_time()))
                : absl::InfiniteFuture();
        const int page_size = req.page_size() == 0 ? 100 : req.page_size();
        rogatory::common::ListDenials(
            redis_, sharding_, req.authority_id(), from, to, req.page_token(), page_size,
            [resp, done](absl::StatusOr<DenialPage> page) {
              if (!page.ok()) return done(page.status());
              for (const DenialRecord& r : page->records) {
                adminpb::Denial* out = resp->add_denials();
                *out->mutable_time() =
                    TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(r.time));
                out->set_method(r.method);
                out->set_code(std::string(absl::StatusCodeToString(r.code)));
                out->set_target_id(r.target_id);
                out->set_caller_authority_id(r.caller.authority_id);
                out->set_caller_state(r.caller.state);
                for (const std::string& role : r.caller.roles) out->add_caller_roles(role);
                out->set_caller_is_service(r.caller.is_service);
                out->set_trace_id(r.trace_id);
              }
              resp->set_next_page_token(page->next_after);
              done(absl::OkStatus());
            });
      });
}

}  // namespace rogatory::common
