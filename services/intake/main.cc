// rogatory-intake: receives and validates requests and owns their lifecycle.
#include "intake_event_handler.h"
#include "intake_service.h"
#include "redis_request_store.h"
#include "rogatory/common/platform.h"

int main(int argc, char** argv) {
  using rogatory::common::Platform;
  using rogatory::common::ServiceParts;
  const rogatory::common::ServiceIdentity identity{
      "rogatory-intake", "intake", "rogatory.intake.v1.IntakeService", "127.0.0.1:50051",
      "127.0.0.1:9101"};
  absl::Duration idempotency_ttl;
  return rogatory::common::ServiceMain(
      identity, argc, argv,
      [&](rogatory::common::Config& config) {
        config.AddDuration("idempotency-ttl", absl::Hours(48), absl::Minutes(1),
                           absl::Hours(24 * 30),
                           "How long a request_id is remembered for idempotent retries.",
                           &idempotency_ttl);
      },
      [&](Platform& platform) -> absl::StatusOr<ServiceParts> {
        ServiceParts parts;
        auto* store = parts.Own(std::make_shared<rogatory::intake::RedisRequestStore>(
            platform.redis(), platform.sharding(), idempotency_ttl));
        parts.services.push_back(parts.Own(std::make_shared<rogatory::intake::IntakeService>(
            *store, platform.clock(), platform.pipeline(), platform.sharding())));
        parts.event_handler =
            parts.Own(std::make_shared<rogatory::intake::IntakeEventHandler>(*store));
        parts.emits_events = true;
        return parts;
      });
}
