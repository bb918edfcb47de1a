// rogatory-intake: receives and validates requests and owns their lifecycle.
#include "intake_event_handler.h"
#include "intake_service.h"
#include "intake_metrics.h"
#include "redis_document_store.h"
#include "redis_request_store.h"
#include "rogatory/common/outbox_relay.h"
#include "rogatory/common/platform.h"

int main(int argc, char** argv) {
  using rogatory::common::Platform;
  using rogatory::common::ServiceParts;
  const rogatory::common::ServiceIdentity identity{
      "rogatory-intake", "intake", "rogatory.intake.v1.IntakeService", "127.0.0.1:50051",
      "127.0.0.1:9101"};
  absl::Duration idempotency_ttl;
  int max_document_size = 0;
  absl::Duration gauge_interval;
  return rogatory::common::ServiceMain(
      identity, argc, argv,
      [&](rogatory::common::Config& config) {
        config.AddDuration("idempotency-ttl", absl::Hours(48), absl::Minutes(1),
                           absl::Hours(24 * 30),
                           "How long a request_id is remembered for idempotent retries.",
                           &idempotency_ttl);
        config.AddInt("max-document-size", 64 << 20, 1, 1 << 30,
                      "Largest document UploadDocument accepts, in bytes.", &max_document_size);
        config.AddDuration("requests-gauge-interval", absl::Seconds(30), absl::Seconds(1),
                           absl::Hours(1),
                           "How often the elected replica recounts rogatory_intake_requests.",
                           &gauge_interval);
      },
      [&](Platform& platform) -> absl::StatusOr<ServiceParts> {
        ServiceParts parts;
        auto* store = parts.Own(std::make_shared<rogatory::intake::RedisRequestStore>(
            platform.redis(), platform.sharding(), idempotency_ttl));
        auto* documents = parts.Own(std::make_shared<rogatory::intake::RedisDocumentStore>(
            platform.redis(), platform.sharding(), *store));
        rogatory::intake::IntakeOptions options;
        options.max_document_bytes = max_document_size;
        options.metrics = parts.Own(
            std::make_shared<rogatory::intake::IntakeMetrics>(platform.metrics().registry()));
        auto* gauge = parts.Own(std::make_shared<rogatory::intake::RequestCountGauge>(
            platform.redis(), platform.sharding(), platform.metrics().registry(),
            rogatory::common::DefaultReplicaId(), gauge_interval));
        gauge->Start();
        parts.services.push_back(parts.Own(std::make_shared<rogatory::intake::IntakeService>(
            *store, platform.clock(), platform.pipeline(), platform.sharding(), documents,
            options)));
        parts.event_handler =
            parts.Own(std::make_shared<rogatory::intake::IntakeEventHandler>(*store));
        parts.emits_events = true;
        return parts;
      });
}
