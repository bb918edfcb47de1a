#include "intake_metrics.h"

#include <map>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "lifecycle.h"
#include "redis_request_store.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/replica_lease.h"

namespace rogatory::intake {

namespace pb = rogatory::common::v1;

namespace {

const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      60,        600,        3600,       6 * 3600,   86400,      3 * 86400,
      7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400, 90 * 86400, 180 * 86400};
  return *buckets;
}

const pb::Instrument kInstruments[] = {pb::INSTRUMENT_MLA,
                                       pb::INSTRUMENT_EIO,
                                       pb::INSTRUMENT_EAW,
                                       pb::INSTRUMENT_EXTRADITION,
                                       pb::INSTRUMENT_PROVISIONAL_ARREST,
                                       pb::INSTRUMENT_FREEZING_ORDER,
                                       pb::INSTRUMENT_PRODUCTION_ORDER};

std::string ShortName(const std::string& enum_name, const std::string& prefix) {
  return enum_name.substr(prefix.size());
}

// One shard's request counts (RedisRequestStore::CountsKey, kept by the scripts that create,
// change and erase requests): "<instrument>:<status>" -> requests. One HGETALL.
absl::StatusOr<std::map<std::string, int64_t>> ReadCounts(common::RedisClient& redis, int shard) {
  constexpr absl::string_view kWhat = "request counts";
  auto reply = common::RunRedisCommand(redis, {"HGETALL", RedisRequestStore::CountsKey(shard)});
  if (!reply.ok()) return reply.status();
  auto fields = common::ReplyStrings(*reply, kWhat);
  if (!fields.ok()) return fields.status();
  std::map<std::string, int64_t> counts;
  for (size_t i = 0; i + 1 < fields->size(); i += 2) {
    int64_t n = 0;
    if (!absl::SimpleAtoi((*fields)[i + 1], &n)) {
      return absl::InternalError(absl::StrCat(kWhat, ": not a number"));
    }
    counts[(*fields)[i]] = n;
  }
  return counts;
}

}  // namespace

IntakeMetrics::IntakeMetrics(prometheus::Registry& registry)
    : rejected_(&prometheus::BuildCounter()
                     .Name("rogatory_intake_submissions_rejected_total")
                     .Help("Submissions refused, by reason (malformed, idempotency_conflict, "
                           "unavailable, other).")
                     .Register(registry)),
      to_ack_(&prometheus::BuildHistogram()
                   .Name("rogatory_intake_time_to_acknowledgment_seconds")
                   .Help("Time from submission to acknowledgment, by instrument.")
                   .Register(registry)),
      to_decision_(&prometheus::BuildHistogram()
                        .Name("rogatory_intake_time_to_decision_seconds")
                        .Help("Time from submission to the recognition or surrender decision, "
                              "by instrument and decision.")
                        .Register(registry)) {
  // Every reason's series exists at zero from the start (the reasons are a fixed set).
  for (const char* reason : {"malformed", "idempotency_conflict", "unavailable", "other"}) {
    rejected_->Add({{"reason", reason}});
  }
}

void IntakeMetrics::SubmissionRejected(const std::string& reason) {
  rejected_->Add({{"reason", reason}}).Increment();
}

void IntakeMetrics::StatusReached(pb::Instrument instrument, pb::RequestStatus status,
                                  absl::Duration since) {
  const std::string name = ShortName(pb::Instrument_Name(instrument), "INSTRUMENT_");
  const double seconds = absl::ToDoubleSeconds(since);
  if (status == pb::REQUEST_STATUS_ACKNOWLEDGED) {
    to_ack_->Add({{"instrument", name}}, DurationBuckets()).Observe(seconds);
  } else if (status == pb::REQUEST_STATUS_RECOGNISED || status == pb::REQUEST_STATUS_REFUSED ||
             status == pb::REQUEST_STATUS_FINAL_DECISION) {
    to_decision_
        ->Add({{"instrument", name},
               {"decision", ShortName(pb::RequestStatus_Name(status), "REQUEST_STATUS_")}},
              DurationBuckets())
        .Observe(seconds);
  }
}

RequestCountGauge::RequestCountGauge(common::RedisClient& redis, common::Sharding sharding,
                                     prometheus::Registry& registry, std::string replica_id,
                                     absl::Duration interval)
    : redis_(redis),
      sharding_(sharding),
      family_(&prometheus::BuildGauge()
                   .Name("rogatory_intake_requests")
                   .Help("Requests by instrument and status (exported by one replica: the "
                         "holder of the gauge lease).")
                   .Register(registry)),
      replica_id_(std::move(replica_id)),
      interval_(interval) {}

bool RequestCountGauge::RefreshOnce() {
  std::vector<std::pair<pb::Instrument, pb::RequestStatus>> pairs;
  for (pb::Instrument i : kInstruments) {
    for (pb::RequestStatus s : Lifecycle::Default().Statuses(i)) pairs.emplace_back(i, s);
  }
  const bool held = common::HoldReplicaLease(
      redis_, absl::StrCat(common::Sharding::Prefix(0), "intake:gauge-lease"), replica_id_,
      interval_ * 3);
  std::map<std::pair<pb::Instrument, pb::RequestStatus>, int64_t> totals;
  if (held) {
    for (const auto& pair : pairs) totals[pair] = 0;
    for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
      auto counts = ReadCounts(redis_, shard);
      if (!counts.ok()) {
        common::Log::Warn("request count gauge refresh failed",
                          {{"error", std::string(counts.status().message())}});
        return held;
      }
      for (auto& [pair, total] : totals) {
        auto it = counts->find(
            absl::StrCat(static_cast<int>(pair.first), ":", static_cast<int>(pair.second)));
        if (it != counts->end()) total += it->second;
      }
    }
  }
  for (const auto& [pair, count] : totals) {
    family_
        ->Add({{"instrument", ShortName(pb::Instrument_Name(pair.first), "INSTRUMENT_")},
               {"status", ShortName(pb::RequestStatus_Name(pair.second), "REQUEST_STATUS_")}})
        .Set(static_cast<double>(count));
  }
  if (!held) {
    // Not the exporter (any more): drop our series so replicas never double count.
    for (const auto& [i, s] : pairs) {
      family_->Remove(
          &family_->Add({{"instrument", ShortName(pb::Instrument_Name(i), "INSTRUMENT_")},
                         {"status", ShortName(pb::RequestStatus_Name(s), "REQUEST_STATUS_")}}));
    }
  }
  return held;
}

void RequestCountGauge::Start() {
  task_ = std::make_unique<common::PeriodicTask>(interval_, [this] { RefreshOnce(); });
}

}  // namespace rogatory::intake
