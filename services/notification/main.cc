// rogatory-notification: serves health, reflection, metrics and the v1 API, whose RPCs answer
// UNIMPLEMENTED until this service's own issue lands.
#include "rogatory/notification/v1/notification.grpc.pb.h"
#include "rogatory/common/platform.h"

int main(int argc, char** argv) {
  const rogatory::common::ServiceIdentity identity{
      "rogatory-notification", "notification", "rogatory.notification.v1.NotificationService", "127.0.0.1:50054", "127.0.0.1:9104"};
  return rogatory::common::ServiceMain(
      identity, argc, argv, {},
      [](rogatory::common::Platform&) -> absl::StatusOr<rogatory::common::ServiceParts> {
        rogatory::common::ServiceParts parts;
        parts.services.push_back(parts.Own(
            std::make_shared<rogatory::notification::v1::NotificationService::CallbackService>()));
        return parts;
      });
}
