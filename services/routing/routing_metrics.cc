#include "routing_metrics.h"

namespace rogatory::routing {

RoutingMetrics::RoutingMetrics(prometheus::Registry& registry) {
  claims_ = &prometheus::BuildCounter()
                 .Name("rogatory_translation_claims_total")
                 .Help("Translation jobs claimed by translators.")
                 .Register(registry)
                 .Add({});
  completions_ = &prometheus::BuildCounter()
                      .Name("rogatory_translation_completions_total")
                      .Help("Translation jobs completed.")
                      .Register(registry)
                      .Add({});
  lease_expiries_ = &prometheus::BuildCounter()
                         .Name("rogatory_translation_lease_expiries_total")
                         .Help("Translation job leases that ran out; the jobs were queued again.")
                         .Register(registry)
                         .Add({});
  dead_letters_ = &prometheus::BuildCounter()
                       .Name("rogatory_translation_dead_letters_total")
                       .Help("Translation jobs moved to the dead-letter list (a person acts).")
                       .Register(registry)
                       .Add({});
  unroutable_ = &prometheus::BuildCounter()
                     .Name("rogatory_routing_unroutable_total")
                     .Help("Requests the registry could not route, flagged for a person.")
                     .Register(registry)
                     .Add({});
  turnaround_ = &prometheus::BuildHistogram()
                     .Name("rogatory_translation_turnaround_seconds")
                     .Help("Time from queueing a translation job to its completion.")
                     .Register(registry)
                     .Add({}, prometheus::Histogram::BucketBoundaries{
                                  60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400,
                                  4 * 86400, 7 * 86400, 14 * 86400});
  depth_family_ = &prometheus::BuildGauge()
                       .Name("rogatory_translation_queue_depth")
                       .Help("Queued translation jobs per language pair (exported by one replica).")
                       .Register(registry);
  age_family_ = &prometheus::BuildGauge()
                     .Name("rogatory_translation_queue_oldest_job_age_seconds")
                     .Help("Age of the oldest queued job per language pair (one replica).")
                     .Register(registry);
  dead_family_ = &prometheus::BuildGauge()
                      .Name("rogatory_translation_dead_letter_jobs")
                      .Help("Jobs on the dead-letter lists (exported by one replica).")
                      .Register(registry);
  unroutable_family_ = &prometheus::BuildGauge()
                            .Name("rogatory_routing_unroutable_requests")
                            .Help("Requests waiting for a person to route them (one replica).")
                            .Register(registry);
}

void RoutingMetrics::Completed(absl::Duration turnaround) {
  completions_->Increment();
  turnaround_->Observe(absl::ToDoubleSeconds(turnaround));
}

void RoutingMetrics::SetQueueState(const std::vector<ShardStats>* stats, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (stats == nullptr) {
    for (auto& [pair, gauges] : pair_gauges_) {
      depth_family_->Remove(gauges.first);
      age_family_->Remove(gauges.second);
    }
    pair_gauges_.clear();
    if (dead_gauge_ != nullptr) dead_family_->Remove(dead_gauge_);
    if (unroutable_gauge_ != nullptr) unroutable_family_->Remove(unroutable_gauge_);
    dead_gauge_ = unroutable_gauge_ = nullptr;
    return;
  }
  std::map<std::pair<std::string, std::string>, std::pair<int64_t, std::optional<absl::Time>>> sum;
  int64_t dead = 0, unroutable = 0;
  for (const auto& shard : *stats) {
    dead += shard.dead_letters;
    unroutable += shard.unroutable;
    for (const auto& p : shard.pairs) {
      auto& [depth, oldest] = sum[{p.source, p.target}];
      depth += p.depth;
      if (p.oldest && (!oldest || *p.oldest < *oldest)) oldest = p.oldest;
    }
  }
  for (const auto& [pair, value] : sum) {
    auto it = pair_gauges_.find(pair);
    if (it == pair_gauges_.end()) {
      std::map<std::string, std::string> labels = {{"source_language", pair.first},
                                                   {"target_language", pair.second}};
      it = pair_gauges_.insert({pair, {&depth_family_->Add(labels), &age_family_->Add(labels)}})
               .first;
    }
    it->second.first->Set(static_cast<double>(value.first));
    it->second.second->Set(value.second ? absl::ToDoubleSeconds(now - *value.second) : 0.0);
  }
  if (dead_gauge_ == nullptr) dead_gauge_ = &dead_family_->Add({});
  if (unroutable_gauge_ == nullptr) unroutable_gauge_ = &unroutable_family_->Add({});
  dead_gauge_->Set(static_cast<double>(dead));
  unroutable_gauge_->Set(static_cast<double>(unroutable));
}

}  // namespace rogatory::routing
