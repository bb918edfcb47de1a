#pragma once

// The pure logic of a deadline: computing it from its rule, the timers it needs, and what
// each change or timer does to it. No I/O; every function takes "now".

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "calendar.h"
#include "rogatory/common/v1/events.pb.h"
#include "rogatory/deadlines/v1/deadlines.pb.h"

namespace rogatory::deadlines {

inline constexpr char kEventSource[] = "deadlines";
inline constexpr char kServiceName[] = "rogatory-deadlines";

// A timer a deadline needs: member "<deadline id>|<what>" (what: "r<i>" reminder i, "d" the
// due time, "e<k>" escalation step k) and when it falls due.
struct TimerSpec {
  std::string member;
  absl::Time due;
};

struct StartInput {
  std::string deadline_id;
  std::string request_id;
  std::string trace_id;
  v1::DeadlineRule rule;
  std::string rules_version;
  common::v1::EventType trigger_type = common::v1::EVENT_TYPE_UNSPECIFIED;
  absl::Time trigger_time;
  CountingPlace place;
  std::string executing_authority_id;
  common::v1::Instrument instrument = common::v1::INSTRUMENT_UNSPECIFIED;
  // An earlier due time the issuer asked for (only used if earlier than the rule's).
  std::optional<absl::Time> shortened_due;
};

// The due time a rule gives a trigger: exact hours, or the end of the last day in `place`.
absl::Time ComputeDue(const v1::DeadlineRule& rule, absl::Time trigger, const CountingPlace& place);

// The issuer's shorter deadline of an event's RequestFacts (a time, or the end of a fixed
// date in `place`), if any.
std::optional<absl::Time> IssuerDue(const common::v1::RequestFacts& facts,
                                    const CountingPlace& place);

// A new RUNNING deadline with its reminders.
v1::Deadline NewDeadline(const StartInput& in);

// The timers the deadline needs in its current state.
std::vector<TimerSpec> TimersOf(const v1::Deadline& d);

// The event announcing a change of `d` (payload: DeadlineChange), without `sequence`, which
// the store assigns.
// Every event type deadlines emits (RelayOptions::emits): the DEADLINE_* changes ChangeEvent
// makes; any other is counted as undeclared (common::EventBuilder::UndeclaredEmits).
std::vector<common::v1::EventType> DeadlineEmittedEvents();

common::v1::Event ChangeEvent(const v1::Deadline& d, common::v1::EventType type, absl::Time now,
                              const std::string& event_id, const std::string& reason_code);

// What a fired timer did.
struct FireResult {
  bool changed = false;  // false: the timer was stale; nothing to write
  common::v1::EventType event_type = common::v1::EVENT_TYPE_UNSPECIFIED;  // if an event
};
// Applies the timer `what` ("r0", "d", "e1", ...) at `now`.
FireResult Fire(v1::Deadline& d, const std::string& what, absl::Time now);

// The changes of the API; each returns the event type to emit, or an error
// (FAILED_PRECONDITION for an illegal move). Complete and Cancel of an already MET or
// CANCELLED deadline return UNSPECIFIED (nothing to write).
absl::StatusOr<common::v1::EventType> Extend(v1::Deadline& d, absl::Duration by,
                                             const std::string& reason_code,
                                             const std::string& note, absl::Time now,
                                             const CountingPlace& place);
absl::StatusOr<common::v1::EventType> Suspend(v1::Deadline& d, absl::Time now);
absl::StatusOr<common::v1::EventType> Resume(v1::Deadline& d, absl::Time now);
absl::StatusOr<common::v1::EventType> Complete(v1::Deadline& d, absl::Time now);
absl::StatusOr<common::v1::EventType> Cancel(v1::Deadline& d, absl::Time now);

bool IsOpen(v1::DeadlineState state);

// An event id derived from a timer's member and the deadline's version, in ULID form (time
// part: the timer's due time), so a repeated firing carries the same id and receivers drop it.
std::string TimerEventId(const std::string& member, int64_t version, absl::Time due);

// Conversions.
absl::Time FromProtoTime(const google::protobuf::Timestamp& t);
google::protobuf::Timestamp ToProtoTime(absl::Time t);
absl::Duration FromProtoDuration(const google::protobuf::Duration& d);
google::protobuf::Duration ToProtoDuration(absl::Duration d);

}  // namespace rogatory::deadlines
