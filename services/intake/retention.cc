#include "retention.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "intake_service.h"
#include "lifecycle.h"
#include "rogatory/common/audit_log.h"
#include "rogatory/common/await.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/replica_lease.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;

// Waits for an async store call: the sweeper runs on its own thread, where blocking is
// allowed.
template <typename T, typename Fn>
absl::StatusOr<T> Wait(Fn&& call) {
  return common::AwaitCallback<absl::StatusOr<T>>(std::forward<Fn>(call));
}

const char* StepLabel(ErasureStep step) {
  return step == ErasureStep::kPersonalData ? "personal_data" : "request";
}

// Rounds of a pass: each erases up to a batch per shard; the rest waits for the next pass.
constexpr int kMaxRounds = 20;

pb::AuthorityRef AuthorityIdOnly(const pb::AuthorityRef& a) {
  pb::AuthorityRef out;
  out.set_authority_id(a.authority_id());
  out.set_state(a.state());
  out.set_region(a.region());
  return out;
}

}  // namespace

const std::string& FinalStatusesText() {
  static const std::string* text = [] {
    std::string out = ",";
    for (int i = pb::Instrument_MIN; i <= pb::Instrument_MAX; ++i) {
      if (!pb::Instrument_IsValid(i) || i == pb::INSTRUMENT_UNSPECIFIED) continue;
      const auto instrument = static_cast<pb::Instrument>(i);
      for (pb::RequestStatus s : Lifecycle::Default().Statuses(instrument)) {
        if (!Lifecycle::Default().IsOpen(instrument, s)) {
          absl::StrAppend(&out, i, ":", static_cast<int>(s), ",");
        }
      }
    }
    return new std::string(out);
  }();
  return *text;
}

bool IsFinalStatus(pb::Instrument instrument, pb::RequestStatus status) {
  return FinalStatusesText().find(absl::StrCat(",", static_cast<int>(instrument), ":",
                                               static_cast<int>(status), ",")) != std::string::npos;
}

v1::Request MakeTombstone(const v1::Request& r) {
  v1::Request t;
  t.set_id(r.id());
  t.set_status(r.status());
  if (r.has_executing_authority()) {
    *t.mutable_executing_authority() = AuthorityIdOnly(r.executing_authority());
  }
  if (r.has_create_time()) *t.mutable_create_time() = r.create_time();
  if (r.has_update_time()) *t.mutable_update_time() = r.update_time();
  t.set_etag(r.etag());
  t.set_trace_id(r.trace_id());
  const v1::RequestContent& c = r.content();
  v1::RequestContent* k = t.mutable_content();
  k->set_instrument(c.instrument());
  k->set_urgency(c.urgency());
  if (c.has_issuing_authority()) {
    *k->mutable_issuing_authority() = AuthorityIdOnly(c.issuing_authority());
  }
  k->set_requested_state(c.requested_state());
  k->set_source_language(c.source_language());
  k->set_legal_basis(c.legal_basis());
  return t;
}

RetentionMetrics::RetentionMetrics(prometheus::Registry& registry)
    : erased_(&prometheus::BuildCounter()
                   .Name("rogatory_intake_erasures_total")
                   .Help("Retention erasures by step: personal_data (the request became a "
                         "tombstone) or request (the tombstone was removed).")
                   .Register(registry)),
      failed_(&prometheus::BuildCounter()
                   .Name("rogatory_intake_erasure_failures_total")
                   .Help("Retention erasure attempts that failed (retried on the next pass), "
                         "by step: personal_data, request or audit.")
                   .Register(registry)) {
  // Export zeros from the start, so rate() and alerts see the series.
  erased_->Add({{"step", "personal_data"}});
  erased_->Add({{"step", "request"}});
  for (const char* step : {"personal_data", "request", "audit"}) failed_->Add({{"step", step}});
}

void RetentionMetrics::Erased(ErasureStep step) {
  erased_->Add({{"step", StepLabel(step)}}).Increment();
}

void RetentionMetrics::Failed(const std::string& step) {
  failed_->Add({{"step", step}}).Increment();
}

RetentionSweeper::RetentionSweeper(RequestStore& store, DocumentStore* documents,
                                   common::Auditor& auditor, const common::Clock& clock,
                                   RetentionSettings settings, RetentionMetrics* metrics,
                                   std::function<bool()> leader)
    : store_(store),
      documents_(documents),
      auditor_(auditor),
      clock_(clock),
      settings_(settings),
      metrics_(metrics),
      leader_(std::move(leader)) {}

absl::Status RetentionSweeper::Audit(const PendingErasureAudit& audit) {
  common::AuditRecord record;
  const bool personal = audit.step == ErasureStep::kPersonalData;
  record.method = personal ? "ErasePersonalData" : "EraseRequest";
  record.caller.authority_id = "rogatory-intake";
  record.caller.roles = {"service"};
  record.caller.is_service = true;
  record.trace_id = common::NewUlid(absl::FromUnixMillis(audit.erased_ms));
  record.justification = "retention period elapsed";
  record.code = absl::StatusCode::kOk;
  record.subjects.push_back(common::AuditSubject{audit.id, common::AccessKind::kChange,
                                                 personal ? "erased personal data" : "erased"});
  absl::Status status = common::RecordAndWait(auditor_, std::move(record));
  if (!status.ok()) return status;
  auto cleared = Wait<bool>([&](auto done) { store_.ErasureAudited(audit, std::move(done)); });
  return cleared.status();
}

absl::StatusOr<bool> RetentionSweeper::EraseStep1(const std::string& id, int64_t closed_before_ms) {
  auto snap = Wait<Snapshot>([&](auto done) { store_.Load(id, std::nullopt, std::move(done)); });
  PersonalDataErasure e;
  e.id = id;
  if (snap.status().code() == absl::StatusCode::kNotFound) {
    // Gone already: the step only drops the stale index entry.
    return Wait<bool>([&](auto done) { store_.ErasePersonalData(std::move(e), std::move(done)); });
  }
  if (!snap.ok()) return snap.status();
  e.expected_version = snap->version;
  e.closed_before_ms = closed_before_ms;
  const absl::Time now = clock_.Now();
  e.now_ms = absl::ToUnixMillis(now);
  e.tombstone = MakeTombstone(snap->request);
  e.tombstone.set_etag(absl::StrCat(snap->version + 1));
  *e.tombstone.mutable_update_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(e.now_ms);
  if (documents_ != nullptr) {
    auto docs =
        Wait<std::vector<v1::Document>>([&](auto done) { documents_->List(id, std::move(done)); });
    if (!docs.ok()) return docs.status();
    for (const auto& d : *docs) e.document_ids.push_back(d.id());
  }
  common::v1::Actor actor;
  actor.set_service("rogatory-intake");
  e.erased =
      NewIntakeEvent(e.tombstone, pb::EVENT_TYPE_REQUEST_ERASED, snap->version + 1, now, actor);
  e.erased.set_reason_code("RETENTION_PERIOD_ELAPSED");
  return Wait<bool>([&](auto done) { store_.ErasePersonalData(std::move(e), std::move(done)); });
}

RetentionSweeper::Stats RetentionSweeper::SweepOnce() {
  Stats stats;
  if (leader_ && !leader_()) return stats;
  auto fail = [&](const std::string& step, const absl::Status& status) {
    ++stats.failures;
    if (metrics_ != nullptr) metrics_->Failed(step);
    common::Log::Warn("retention step failed; retried on the next pass",
                      {{"step", step}, {"error", std::string(status.message())}});
  };
  std::set<std::string> failed;  // ids not retried within this pass
  for (int round = 0; round < kMaxRounds; ++round) {
    const absl::Time now = clock_.Now();
    const int64_t closed_before = absl::ToUnixMillis(now - settings_.closed);
    const int64_t tombstoned_before = absl::ToUnixMillis(now - settings_.tombstone);
    auto work = Wait<RetentionWork>([&](auto done) {
      store_.FindRetentionWork(closed_before, tombstoned_before, settings_.batch, std::move(done));
    });
    if (!work.ok()) {
      fail("find", work.status());
      return stats;
    }
    int progress = 0;
    for (const PendingErasureAudit& a : work->unaudited) {
      const std::string key = absl::StrCat("audit:", a.id, ":", static_cast<int>(a.step));
      if (failed.contains(key)) continue;
      if (absl::Status s = Audit(a); !s.ok()) {
        failed.insert(key);
        fail("audit", s);
        continue;
      }
      ++stats.audits_recorded;
      ++progress;
    }
    for (const std::string& id : work->personal) {
      if (failed.contains(id)) continue;
      auto erased = EraseStep1(id, closed_before);
      if (!erased.ok()) {
        failed.insert(id);
        fail("personal_data", erased.status());
        continue;
      }
      ++progress;
      if (!*erased) continue;
      ++stats.personal_erased;
      if (metrics_ != nullptr) metrics_->Erased(ErasureStep::kPersonalData);
      common::Log::Info("retention: personal data erased", {{"request_id", id}});
      // Recorded by the next round's pending audits (the same path a crash takes).
    }
    for (const std::string& id : work->whole) {
      if (failed.contains(id)) continue;
      auto erased = Wait<bool>([&](auto done) {
        store_.EraseRequest(id, tombstoned_before, absl::ToUnixMillis(clock_.Now()),
                            std::move(done));
      });
      if (!erased.ok()) {
        failed.insert(id);
        fail("request", erased.status());
        continue;
      }
      ++progress;
      if (!*erased) continue;
      ++stats.requests_erased;
      if (metrics_ != nullptr) metrics_->Erased(ErasureStep::kRequest);
      common::Log::Info("retention: request erased", {{"request_id", id}});
    }
    if (progress == 0) break;
  }
  return stats;
}

void RetentionSweeper::Start(absl::Duration interval) {
  task_ = std::make_unique<common::PeriodicTask>(interval, [this] { SweepOnce(); });
}

bool HoldRetentionLease(common::RedisClient& redis, const std::string& replica_id,
                        absl::Duration ttl) {
  return common::HoldReplicaLease(
      redis, absl::StrCat(common::Sharding::Prefix(0), "intake:retention-lease"), replica_id, ttl);
}

}  // namespace rogatory::intake
