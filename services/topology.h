#pragma once

// The deployment topology's defaults, as a development machine runs the four services: one
// host, a gRPC and a metrics port each, and where each service receives events. Each
// main.cc takes its ServiceIdentity from here; common's code names no service and no port.
// Deployments set their own through the settings (listen, metrics-listen, event-receivers;
// ROGATORY_LISTEN, ROGATORY_METRICS_LISTEN, ROGATORY_EVENT_RECEIVERS: deploy/compose.yaml,
// the Helm chart).

#include <string>

#include "absl/strings/str_cat.h"
#include "rogatory/common/platform.h"

namespace rogatory::topology {

inline constexpr char kIntakeListen[] = "127.0.0.1:50051";
inline constexpr char kRoutingListen[] = "127.0.0.1:50052";
inline constexpr char kDeadlinesListen[] = "127.0.0.1:50053";
inline constexpr char kNotificationListen[] = "127.0.0.1:50054";

// event-receivers' default: every service at its default address.
inline std::string DefaultEventReceivers() {
  return absl::StrCat("intake=", kIntakeListen, ",routing=", kRoutingListen,
                      ",deadlines=", kDeadlinesListen, ",notification=", kNotificationListen);
}

inline common::ServiceIdentity Intake() {
  return {"rogatory-intake", "intake",         "rogatory.intake.v1.IntakeService",
          kIntakeListen,     "127.0.0.1:9101", DefaultEventReceivers()};
}
inline common::ServiceIdentity Routing() {
  return {"rogatory-routing", "routing",        "rogatory.routing.v1.TranslationRoutingService",
          kRoutingListen,     "127.0.0.1:9102", DefaultEventReceivers()};
}
inline common::ServiceIdentity Deadlines() {
  return {"rogatory-deadlines", "deadlines",      "rogatory.deadlines.v1.DeadlineService",
          kDeadlinesListen,     "127.0.0.1:9103", DefaultEventReceivers()};
}
inline common::ServiceIdentity Notification() {
  return {"rogatory-notification", "notification",   "rogatory.notification.v1.NotificationService",
          kNotificationListen,     "127.0.0.1:9104", DefaultEventReceivers()};
}

}  // namespace rogatory::topology
