// rogatory-routing: serves health, reflection, metrics and the v1 API, whose RPCs answer
// UNIMPLEMENTED until this service's own issue lands.
#include "rogatory/routing/v1/routing.grpc.pb.h"
#include "rogatory/common/platform.h"

int main(int argc, char** argv) {
  const rogatory::common::ServiceIdentity identity{
      "rogatory-routing", "routing", "rogatory.routing.v1.TranslationRoutingService", "127.0.0.1:50052", "127.0.0.1:9102"};
  return rogatory::common::ServiceMain(
      identity, argc, argv, {},
      [](rogatory::common::Platform&) -> absl::StatusOr<rogatory::common::ServiceParts> {
        rogatory::common::ServiceParts parts;
        parts.services.push_back(parts.Own(
            std::make_shared<rogatory::routing::v1::TranslationRoutingService::CallbackService>()));
        return parts;
      });
}
