#pragma once

#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace rogatory::notification {

// The service's business metrics. Labels carry codes only (event source,
// channel, outcome class), never authorities or requests. The two shared-state
// gauges (dead letters, un-retrieved) are computed from Redis by every replica:
// aggregate them with max().
class NotificationMetrics {
 public:
  explicit NotificationMetrics(prometheus::Registry& registry);

  void EventReceived(const std::string& source) {
    received_->Add({{"source", source}}).Increment();
  }
  void FanOut(int recipients) { fanout_->Observe(recipients); }
  // Seconds from receipt (accept) to delivery on a stream or a webhook's 2xx.
  void DeliveryLatency(const std::string& channel, double seconds) {
    latency_->Add({{"channel", channel}}, LatencyBuckets()).Observe(seconds);
  }
  void WebhookOutcome(const std::string& outcome) {
    webhooks_->Add({{"outcome", outcome}}).Increment();
  }
  prometheus::Gauge& dead_letters() { return *dead_letters_; }
  prometheus::Gauge& connected_subscribers() { return *subscribers_; }
  prometheus::Gauge& unretrieved() { return *unretrieved_; }

 private:
  static const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

  prometheus::Family<prometheus::Counter>* received_;
  prometheus::Histogram* fanout_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Family<prometheus::Counter>* webhooks_;
  prometheus::Gauge* dead_letters_;
  prometheus::Gauge* subscribers_;
  prometheus::Gauge* unretrieved_;
};

}  // namespace rogatory::notification
