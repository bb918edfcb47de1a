// rogatory-routing: the translation-routing service. Loads the declarations registry
// (refusing to start on a bad one), reloads it on SIGHUP and when its folder changes, routes
// requests from intake's events and runs the translation jobs.
#include "redis_routing_store.h"
#include "registry.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/platform.h"
#include "routing_background.h"
#include "routing_event_handler.h"
#include "routing_metrics.h"
#include "routing_service.h"
#include "topology.h"

#ifndef ROGATORY_ROUTING_DEFAULT_REGISTRY_DIR
#define ROGATORY_ROUTING_DEFAULT_REGISTRY_DIR "/etc/rogatory/registry"
#endif

int main(int argc, char** argv) {
  using rogatory::common::Platform;
  using rogatory::common::ServiceParts;
  namespace routing = rogatory::routing;
  const rogatory::common::ServiceIdentity identity = rogatory::topology::Routing();
  std::string registry_dir;
  int max_attempts = 3;
  absl::Duration sweep_interval;
  absl::Duration metrics_interval;
  return rogatory::common::ServiceMain(
      identity, argc, argv,
      [&](rogatory::common::Config& config) {
        config.AddString("registry-dir", ROGATORY_ROUTING_DEFAULT_REGISTRY_DIR,
                         "Folder of the declarations registry (*.json files); reloaded on "
                         "SIGHUP and when the folder changes.",
                         &registry_dir);
        config.AddInt("translation-max-attempts", 3, 1, 100,
                      "Claims of a translation job before a failure or an expired lease moves "
                      "it to the dead-letter list.",
                      &max_attempts);
        config.AddDuration("translation-sweep-interval", absl::Seconds(5), absl::Milliseconds(50),
                           absl::Minutes(10),
                           "How often expired translation leases are returned to their queues "
                           "(by one replica: the holder of the background lease).",
                           &sweep_interval);
        config.AddDuration("translation-metrics-interval", absl::Seconds(30),
                           absl::Milliseconds(100), absl::Minutes(10),
                           "How often queue depth and age gauges are refreshed.",
                           &metrics_interval);
      },
      [&](Platform& platform) -> absl::StatusOr<ServiceParts> {
        ServiceParts parts;
        auto initial = routing::LoadRegistryDirectory(registry_dir);
        if (!initial.ok()) return initial.status();  // refuse to start on a bad registry
        rogatory::common::Log::Info(
            "declarations registry loaded",
            {{"version", (*initial)->version()},
             {"declarations", static_cast<int64_t>((*initial)->declarations().size())}});
        auto* registry = parts.Own(std::make_shared<routing::RegistryHolder>(*initial));
        platform.reload_hooks().Add("declarations registry", [registry, registry_dir] {
          absl::Status s = registry->Reload(registry_dir);
          if (s.ok()) {
            rogatory::common::Log::Info("declarations registry in use",
                                        {{"version", registry->Get()->version()}});
          }
          return s;
        });
        if (absl::Status s = platform.WatchDirectory(registry_dir); !s.ok()) return s;
        auto* metrics =
            parts.Own(std::make_shared<routing::RoutingMetrics>(platform.metrics().registry()));
        auto* store = parts.Own(
            std::make_shared<routing::RedisRoutingStore>(platform.redis(), platform.sharding()));
        parts.services.push_back(parts.Own(std::make_shared<routing::RoutingService>(
            *store, *registry, platform.clock(), platform.pipeline(), platform.sharding(), metrics,
            routing::RoutingServiceSettings{max_attempts})));
        parts.event_handler = parts.Own(std::make_shared<routing::RoutingEventHandler>(
            *store, *registry, platform.clock(), platform.redis(), metrics));
        // Its threads use Redis: stop them (by destroying it) while the platform still runs.
        auto background = std::make_shared<routing::RoutingBackground>(
            *store, platform.redis(), platform.sharding(), platform.clock(), *metrics, max_attempts,
            sweep_interval, metrics_interval);
        parts.on_drain.push_back([background]() mutable { background.reset(); });
        parts.emits_events = true;
        parts.emitted_events = {rogatory::common::v1::EVENT_TYPE_ROUTING_DECIDED,
                                rogatory::common::v1::EVENT_TYPE_TRANSLATION_JOB_QUEUED,
                                rogatory::common::v1::EVENT_TYPE_TRANSLATION_JOB_CLAIMED,
                                rogatory::common::v1::EVENT_TYPE_TRANSLATION_JOB_COMPLETED,
                                rogatory::common::v1::EVENT_TYPE_TRANSLATION_JOB_FAILED,
                                rogatory::common::v1::EVENT_TYPE_TRANSLATION_JOB_CANCELLED};
        return parts;
      });
}
