#pragma once

#include "rogatory/common/v1/events.pb.h"
#include "rogatory/intake/v1/intake.pb.h"

namespace rogatory::intake {

// Whether intake keeps a request's next deadline from this event type (the deadline
// events deadline-tracking emits about a request).
bool IsDeadlineEvent(common::v1::EventType type);

// Applies a deadline event to the request's tracked deadlines and recomputes its
// next_deadline: STARTED adds the deadline (or refreshes it); EXTENDED and RESUMED move its
// due time (clearing at-risk and missed: the new due time is not at risk until its own
// reminder); REMINDER marks it at risk; MISSED and ESCALATED mark it missed and at risk
// (those three only when about the due time intake knows: a late one about a due time an
// extension replaced marks nothing); MET and CANCELLED drop it; SUSPENDED sets it aside
// until RESUMED. The next deadline is the soonest tracked one not suspended (ties: the
// smaller id). Applying an event twice leaves what applying it once left (the dedupe marker
// also stops redeliveries). Returns whether the request changed.
bool ApplyDeadlineEvent(const common::v1::Event& event, v1::Request* request);

}  // namespace rogatory::intake
