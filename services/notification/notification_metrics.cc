#include "notification_metrics.h"

namespace rogatory::notification {

NotificationMetrics::NotificationMetrics(prometheus::Registry& registry) {
  received_ = &prometheus::BuildCounter()
                   .Name("rogatory_notification_events_received_total")
                   .Help("Events the notification service took in (duplicates excluded).")
                   .Register(registry);
  fanout_ = &prometheus::BuildHistogram()
                 .Name("rogatory_notification_fanout_recipients")
                 .Help("Inbox recipients per received event.")
                 .Register(registry)
                 .Add({}, prometheus::Histogram::BucketBoundaries{0, 1, 2, 3, 4, 5, 8, 16});
  latency_ = &prometheus::BuildHistogram()
                  .Name("rogatory_notification_delivery_latency_seconds")
                  .Help(
                      "Time from receipt of an event to its delivery on a "
                      "stream or webhook.")
                  .Register(registry);
  webhooks_ = &prometheus::BuildCounter()
                   .Name("rogatory_notification_webhook_deliveries_total")
                   .Help(
                       "Webhook delivery attempts by outcome (http_2xx, "
                       "http_5xx, timeout, ...).")
                   .Register(registry);
  // The success outcome exists at zero from the start (as gRPC's code OK does): the
  // deliveries panel and rate() show 0 before the first webhook; failures appear as they
  // happen.
  webhooks_->Add({{"outcome", "http_2xx"}});
  dead_letters_ = &prometheus::BuildGauge()
                       .Name("rogatory_notification_dead_letters")
                       .Help("Webhook deliveries in the dead-letter list (all shards).")
                       .Register(registry)
                       .Add({});
  subscribers_ = &prometheus::BuildGauge()
                      .Name("rogatory_notification_connected_subscribers")
                      .Help("Subscribe streams open on this replica.")
                      .Register(registry)
                      .Add({});
  unretrieved_ = &prometheus::BuildGauge()
                      .Name("rogatory_notification_unretrieved")
                      .Help("Notifications not yet retrieved (pending retrieval timers).")
                      .Register(registry)
                      .Add({});
}

const prometheus::Histogram::BucketBoundaries& NotificationMetrics::LatencyBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600};
  return *b;
}

}  // namespace rogatory::notification
