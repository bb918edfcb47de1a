// rogatory-deadlines: serves health, reflection, metrics and the v1 API, whose RPCs answer
// UNIMPLEMENTED until this service's own issue lands.
#include "rogatory/deadlines/v1/deadlines.grpc.pb.h"
#include "rogatory/common/platform.h"

int main(int argc, char** argv) {
  const rogatory::common::ServiceIdentity identity{
      "rogatory-deadlines", "deadlines", "rogatory.deadlines.v1.DeadlineService", "127.0.0.1:50053", "127.0.0.1:9103"};
  return rogatory::common::ServiceMain(
      identity, argc, argv, {},
      [](rogatory::common::Platform&) -> absl::StatusOr<rogatory::common::ServiceParts> {
        rogatory::common::ServiceParts parts;
        parts.services.push_back(parts.Own(
            std::make_shared<rogatory::deadlines::v1::DeadlineService::CallbackService>()));
        return parts;
      });
}
