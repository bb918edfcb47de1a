// rogatory-intake: receives and validates requests and owns their lifecycle.
#include <algorithm>

#include "intake_event_handler.h"
#include "intake_metrics.h"
#include "intake_service.h"
#include "redis_document_store.h"
#include "redis_request_store.h"
#include "retention.h"
#include "rogatory/common/outbox_relay.h"
#include "rogatory/common/platform.h"
#include "topology.h"

int main(int argc, char** argv) {
  using rogatory::common::Platform;
  using rogatory::common::ServiceParts;
  const rogatory::common::ServiceIdentity identity = rogatory::topology::Intake();
  absl::Duration idempotency_ttl;
  int max_document_size = 0;
  int64_t max_document_bytes_per_request = 0;
  int64_t max_document_bytes_per_authority = 0;
  absl::Duration gauge_interval;
  rogatory::intake::RetentionSettings retention;
  absl::Duration sweep_interval;
  absl::Duration upload_idle_timeout;
  return rogatory::common::ServiceMain(
      identity, argc, argv,
      [&](rogatory::common::Config& config) {
        config.AddDuration(
            "idempotency-ttl", absl::Hours(48), absl::Minutes(1), absl::Hours(24 * 30),
            "How long a request_id is remembered for idempotent retries.", &idempotency_ttl);
        config.AddInt("max-document-size", 64 << 20, 1, 1 << 30,
                      "Largest document UploadDocument accepts, in bytes.", &max_document_size);
        config.AddInt64("max-document-bytes-per-request", int64_t{256} << 20, 0, int64_t{1} << 50,
                        "Most bytes of documents one request holds; an upload past it answers "
                        "RESOURCE_EXHAUSTED. 0: no bound.",
                        &max_document_bytes_per_request);
        config.AddInt64("max-document-bytes-per-authority", int64_t{2} << 30, 0, int64_t{1} << 50,
                        "Most bytes of documents one authority's uploads hold over all requests "
                        "(given back when retention erases them); past it RESOURCE_EXHAUSTED. "
                        "0: no bound.",
                        &max_document_bytes_per_authority);
        config.AddDuration("upload-idle-timeout", absl::Seconds(30), absl::ZeroDuration(),
                           absl::Hours(1),
                           "An UploadDocument whose client sends no message for this long is "
                           "ended with DEADLINE_EXCEEDED and its bytes discarded (0: never); a "
                           "chunked upload (StartDocumentUpload) with no call for this long "
                           "expires with its bytes (0: after an hour).",
                           &upload_idle_timeout);
        config.AddDuration(
            "requests-gauge-interval", absl::Seconds(30), absl::Seconds(1), absl::Hours(1),
            "How often the elected replica refreshes rogatory_intake_requests (one read of "
            "each shard's request counts).",
            &gauge_interval);
        // Retention (issue 8 point 5). Idempotency records (which hold replies with personal
        // data) follow idempotency-ttl, which may not exceed retention-closed.
        config.AddDuration("retention-closed", absl::Hours(24 * 730), absl::Minutes(1),
                           absl::Hours(24 * 365 * 100),
                           "How long a request in a final status (executed, refused, withdrawn, "
                           "closed...) keeps its personal data before retention erases it.",
                           &retention.closed);
        config.AddDuration("retention-tombstone", absl::Hours(24 * 365 * 5), absl::Minutes(1),
                           absl::Hours(24 * 365 * 100),
                           "How long the tombstone of an erased request (id, instrument, "
                           "status, dates, authority ids, history) is kept before it goes too.",
                           &retention.tombstone);
        config.AddDuration("retention-sweep-interval", absl::Minutes(10), absl::Seconds(1),
                           absl::Hours(24),
                           "How often the replica holding the retention lease looks for "
                           "requests to erase.",
                           &sweep_interval);
      },
      [&](Platform& platform) -> absl::StatusOr<ServiceParts> {
        if (retention.closed < idempotency_ttl) {
          return absl::InvalidArgumentError(
              "retention-closed must be at least idempotency-ttl: idempotency records keep "
              "replies that hold personal data");
        }
        ServiceParts parts;
        auto* store = parts.Own(std::make_shared<rogatory::intake::RedisRequestStore>(
            platform.redis(), platform.sharding(), idempotency_ttl));
        auto* documents = parts.Own(std::make_shared<rogatory::intake::RedisDocumentStore>(
            platform.redis(), platform.sharding(), *store));
        rogatory::intake::IntakeOptions options;
        options.max_document_bytes = max_document_size;
        options.max_document_bytes_per_request = max_document_bytes_per_request;
        options.max_document_bytes_per_authority = max_document_bytes_per_authority;
        // Real time, like token lifetimes: a moved test clock must not end uploads. Static:
        // it outlives the watch's thread, whatever order the parts go in.
        static const rogatory::common::RealClock real_clock;
        options.upload_idle_watch = parts.Own(std::make_shared<rogatory::common::IdleWatch>(
            real_clock, upload_idle_timeout,
            std::clamp(upload_idle_timeout / 4, absl::Milliseconds(100), absl::Seconds(5))));
        options.metrics = parts.Own(
            std::make_shared<rogatory::intake::IntakeMetrics>(platform.metrics().registry()));
        auto* gauge = parts.Own(std::make_shared<rogatory::intake::RequestCountGauge>(
            platform.redis(), platform.sharding(), platform.metrics().registry(),
            rogatory::common::DefaultReplicaId(), gauge_interval));
        gauge->Start();
        auto* retention_metrics = parts.Own(
            std::make_shared<rogatory::intake::RetentionMetrics>(platform.metrics().registry()));
        auto* sweeper = parts.Own(std::make_shared<rogatory::intake::RetentionSweeper>(
            *store, documents, platform.auditor(), platform.clock(), retention, retention_metrics,
            [&redis = platform.redis(), replica = rogatory::common::DefaultReplicaId(),
             ttl = sweep_interval * 3] {
              return rogatory::intake::HoldRetentionLease(redis, replica, ttl);
            }));
        sweeper->Start(sweep_interval);
        // Their threads use Redis, which the platform stops right after the drain.
        parts.on_drain.push_back([gauge, sweeper] {
          sweeper->Stop();
          gauge->Stop();
        });
        parts.services.push_back(parts.Own(std::make_shared<rogatory::intake::IntakeService>(
            *store, platform.clock(), platform.pipeline(), platform.sharding(), documents,
            options)));
        parts.event_handler =
            parts.Own(std::make_shared<rogatory::intake::IntakeEventHandler>(*store));
        parts.emits_events = true;
        // Lanes only to receivers that want one of these (issue 19).
        parts.emitted_events = rogatory::intake::IntakeEmittedEvents();
        return parts;
      });
}
