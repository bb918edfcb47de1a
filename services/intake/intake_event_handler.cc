#include "intake_event_handler.h"

#include "rogatory/common/logging.h"

namespace rogatory::intake {

void IntakeEventHandler::Handle(const common::v1::Event& event, const common::Dedupe& dedupe,
                                std::function<void(absl::StatusOr<Outcome>)> done) {
  store_.RecordEvent(event, dedupe, [done, event_id = event.event_id(),
                                     trace = event.trace_id()](absl::StatusOr<Outcome> outcome) {
    if (outcome.status().code() == absl::StatusCode::kNotFound) {
      common::Log::Warn("event about an unknown request dropped",
                        {{"event_id", event_id}, {"trace_id", trace}});
      return done(Outcome::kHandled);
    }
    done(std::move(outcome));
  });
}

}  // namespace rogatory::intake
