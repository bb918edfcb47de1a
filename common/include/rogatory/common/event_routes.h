#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rogatory/common/v1/events.pb.h"

namespace rogatory::common {

// Which service wants which event types: the configuration the relays deliver by.
//
// Text format, one receiver a line, `#` starts a comment:
//   <receiver>: <EVENT_TYPE> <EVENT_TYPE> ...      (the EVENT_TYPE_ prefix may be left out)
//   <receiver>: *                                   (every type)
// A receiver never gets the events it emitted itself.
class EventRoutes {
 public:
  // The default routes of the four services (see README, "Event backbone").
  static const EventRoutes& Defaults();
  static const char* DefaultText();

  // INVALID_ARGUMENT naming the line and the problem.
  static absl::StatusOr<EventRoutes> Parse(absl::string_view text);

  bool Wants(absl::string_view receiver, common::v1::EventType type) const;
  // Receivers with at least one route, except `emitter` itself.
  std::vector<std::string> ReceiversOf(absl::string_view emitter) const;

 private:
  std::map<std::string, std::set<int>, std::less<>> routes_;  // -1: every type
};

// Receiver addresses: "intake=host:port,routing=host:port,...".
absl::StatusOr<std::map<std::string, std::string>> ParseReceiverAddresses(absl::string_view text);

}  // namespace rogatory::common
