#pragma once

#include "request_store.h"
#include "rogatory/common/event_sink.h"

namespace rogatory::intake {

// What intake does with the events other services deliver: records their decisions (a
// routing decision, a deadline started or missed) in the request's history and, when the
// event names a status the lifecycle allows from the request's current one, moves the
// request there and announces the move with intake's own lifecycle event (the trigger
// deadline-tracking listens for). That event is also the history's next entry, after the
// reported one: every status change is one history entry, under the name deadlines and
// notifications use (a move to FORWARDED after a translation reads
// TRANSLATION_JOB_COMPLETED, without a status, then REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY
// with the status and the previous status). All in one atomic step with the duplicate
// marker (RequestStore::Mutate). A status the lifecycle does not allow is recorded in the
// history without changing the status, with a warning log; so is a status the lifecycle
// table does not let a service cause by report (WITHDRAWN is the issuing side's, with
// WithdrawRequest; ACKNOWLEDGED the executing side's, with AcknowledgeRequest: see
// lifecycle.h, Cause). An event about a request intake does not hold is logged and dropped:
// it can never become valid, so retrying it would only stall the lane.
class IntakeEventHandler final : public common::EventHandler {
 public:
  explicit IntakeEventHandler(RequestStore& store) : store_(store) {}
  void Handle(const common::v1::Event& event, const common::Dedupe& dedupe,
              std::function<void(absl::StatusOr<Outcome>)> done) override;

  // The change a reported event makes to a request (exposed for tests).
  static Mutation Plan(const Snapshot& snapshot, const common::v1::Event& event,
                       const common::Dedupe& dedupe);

  // How often a change is recomputed after a concurrent one.
  static constexpr int kAttempts = 8;

 private:
  void Attempt(common::v1::Event event, common::Dedupe dedupe, int attempts_left,
               std::function<void(absl::StatusOr<Outcome>)> done);

  RequestStore& store_;
};

}  // namespace rogatory::intake
