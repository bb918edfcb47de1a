#pragma once

#include <optional>
#include <string>
#include <vector>

#include "rogatory/common/v1/events.pb.h"
#include "rogatory/common/v1/types.pb.h"

namespace rogatory::intake {

// One allowed move of a request: to a status, announcing it with an event type. The event
// types are the names deadline-tracking's rules use as triggers (events.proto), so a move
// to FORWARDED emits EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY, a move to ARRESTED
// EVENT_TYPE_PERSON_ARRESTED, and so on.
struct Move {
  common::v1::RequestStatus to = common::v1::REQUEST_STATUS_UNSPECIFIED;
  common::v1::EventType event = common::v1::EVENT_TYPE_UNSPECIFIED;
};

// The lifecycle state machines of the seven instruments: per instrument, which statuses a
// request may move to from each status. The whole table is data in lifecycle.cc, in one
// place. Two moves are not in it because they are not a caller's decision:
// - submission, which sets RECEIVED or INCOMPLETE from the completeness checks;
// - INCOMPLETE -> RECEIVED, which only SupplementRequest makes, once the re-run checks find
//   nothing missing.
// Immutable after construction; thread-safe.
class Lifecycle {
 public:
  // The built-in table (see lifecycle.cc).
  static const Lifecycle& Default();

  // The moves allowed from `from` for `instrument`, in table order; empty for an unknown
  // instrument or a status the instrument never leaves (CLOSED).
  const std::vector<Move>& MovesFrom(common::v1::Instrument instrument,
                                     common::v1::RequestStatus from) const;

  // The move from `from` to `to`, if the lifecycle allows it.
  std::optional<Move> Find(common::v1::Instrument instrument, common::v1::RequestStatus from,
                           common::v1::RequestStatus to) const;

  // Whether a request in `status` can still change in substance: it has a move to
  // somewhere other than CLOSED. Refused, executed, withdrawn, closed requests are not open.
  bool IsOpen(common::v1::Instrument instrument, common::v1::RequestStatus status) const;

  // Every status the instrument's table mentions (as origin or target), sorted.
  std::vector<common::v1::RequestStatus> Statuses(common::v1::Instrument instrument) const;

  // "REQUEST_STATUS_ACKNOWLEDGED, REQUEST_STATUS_FORWARDED" (or "none"), for error messages.
  std::string DescribeMovesFrom(common::v1::Instrument instrument,
                                common::v1::RequestStatus from) const;

  struct Row {
    common::v1::Instrument instrument;
    common::v1::RequestStatus from;
    std::vector<Move> moves;
  };
  explicit Lifecycle(std::vector<Row> rows);

 private:
  std::vector<Row> rows_;
};

}  // namespace rogatory::intake
