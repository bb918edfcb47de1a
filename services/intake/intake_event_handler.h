#pragma once

#include "request_store.h"
#include "rogatory/common/event_sink.h"

namespace rogatory::intake {

// What intake does with the events other services deliver: records their decisions (a
// routing decision, a deadline started or missed) in the request's history, and the
// request's new status when the event names one, in one atomic step (RequestStore::
// RecordEvent). An event about a request intake does not hold is logged and dropped: it
// can never become valid, so retrying it would only stall the lane.
class IntakeEventHandler final : public common::EventHandler {
 public:
  explicit IntakeEventHandler(RequestStore& store) : store_(store) {}
  void Handle(const common::v1::Event& event, const common::Dedupe& dedupe,
              std::function<void(absl::StatusOr<Outcome>)> done) override;

 private:
  RequestStore& store_;
};

}  // namespace rogatory::intake
