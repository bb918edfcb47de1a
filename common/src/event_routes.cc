#include "rogatory/common/event_routes.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace rogatory::common {

const char* EventRoutes::DefaultText() {
  return R"(# Default event routes: which service receives which event types.
# intake records the other services' decisions in the request's history.
intake: ROUTING_DECIDED TRANSLATION_JOB_QUEUED TRANSLATION_JOB_CLAIMED
        TRANSLATION_JOB_COMPLETED TRANSLATION_JOB_FAILED TRANSLATION_JOB_CANCELLED
        DEADLINE_STARTED DEADLINE_REMINDER DEADLINE_MISSED DEADLINE_ESCALATED
        DEADLINE_MET DEADLINE_EXTENDED DEADLINE_SUSPENDED DEADLINE_RESUMED DEADLINE_CANCELLED
# translation-routing routes new and supplemented requests, cancels jobs of ended ones, and
# orders its queues by deadlines.
routing: REQUEST_SUBMITTED REQUEST_SUPPLEMENTED REQUEST_WITHDRAWN REQUEST_REFUSED
         REQUEST_CLOSED DOCUMENT_ADDED DEADLINE_STARTED DEADLINE_EXTENDED DEADLINE_SUSPENDED
         DEADLINE_RESUMED DEADLINE_MET DEADLINE_CANCELLED REQUEST_ERASED
# deadline-tracking starts, settles and cancels deadlines on lifecycle events (triggers).
deadlines: REQUEST_SUBMITTED REQUEST_ACKNOWLEDGED REQUEST_INCOMPLETE REQUEST_SUPPLEMENTED
           REQUEST_TRANSLATION_PENDING REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY
           REQUEST_RECOGNISED REQUEST_REFUSED REQUEST_POSTPONED REQUEST_EXECUTION_STARTED
           REQUEST_EXECUTED REQUEST_PARTIALLY_EXECUTED REQUEST_WITHDRAWN REQUEST_CLOSED
           REQUEST_SUSPENDED REQUEST_RESUMED PERSON_ARRESTED PROVISIONAL_ARREST CONSENT_GIVEN
           CONSENT_REFUSED FORMAL_REQUEST_RECEIVED FINAL_DECISION PERSON_SURRENDERED
           PERSON_RELEASED SENT_TO_PROVIDER DATA_PRODUCED ENFORCING_AUTHORITY_OBJECTED
           REQUEST_ERASED
# notification tells the parties about everything.
notification: *
)";
}

absl::StatusOr<EventRoutes> EventRoutes::Parse(absl::string_view text) {
  EventRoutes routes;
  std::string current;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (auto hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("event routes line ", line_number, ": ", why));
    };
    if (auto colon = line.find(':'); colon != absl::string_view::npos) {
      current = std::string(absl::StripAsciiWhitespace(line.substr(0, colon)));
      if (current.empty()) return fail("receiver name is empty");
      routes.routes_[current];
      line = absl::StripAsciiWhitespace(line.substr(colon + 1));
    } else if (current.empty()) {
      return fail("expected '<receiver>: <event types>'");
    }
    for (absl::string_view word : absl::StrSplit(line, ' ', absl::SkipWhitespace())) {
      if (word == "*") {
        routes.routes_[current].insert(-1);
        continue;
      }
      std::string name(word);
      if (!absl::StartsWith(name, "EVENT_TYPE_")) name = absl::StrCat("EVENT_TYPE_", name);
      common::v1::EventType type;
      if (!common::v1::EventType_Parse(name, &type) || type == common::v1::EVENT_TYPE_UNSPECIFIED) {
        return fail(absl::StrCat("unknown event type '", word, "'"));
      }
      routes.routes_[current].insert(type);
    }
  }
  return routes;
}

const EventRoutes& EventRoutes::Defaults() {
  static const EventRoutes* defaults = new EventRoutes(*Parse(DefaultText()));
  return *defaults;
}

bool EventRoutes::Wants(absl::string_view receiver, common::v1::EventType type) const {
  auto it = routes_.find(receiver);
  if (it == routes_.end()) return false;
  return it->second.contains(-1) || it->second.contains(type);
}

std::vector<std::string> EventRoutes::ReceiversOf(absl::string_view emitter) const {
  std::vector<std::string> out;
  for (const auto& [receiver, types] : routes_) {
    if (receiver != emitter && !types.empty()) out.push_back(receiver);
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> ParseReceiverAddresses(absl::string_view text) {
  std::map<std::string, std::string> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty() || kv[1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("'", item, "' is not <service>=<host:port>"));
    }
    out[std::string(absl::StripAsciiWhitespace(kv[0]))] =
        std::string(absl::StripAsciiWhitespace(kv[1]));
  }
  return out;
}

}  // namespace rogatory::common
