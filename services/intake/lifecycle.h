#pragma once

#include <optional>
#include <string>
#include <vector>

#include "rogatory/common/v1/events.pb.h"
#include "rogatory/common/v1/types.pb.h"

namespace rogatory::intake {

// The sides of a request a caller may act for, as a bit set (issue 16 item 3). Which sides a
// caller acts for is decided by the common need-to-know policy (common/access.h:
// OnIssuingSide, OnExecutingSide, IsNotifiedAuthority; caller.is_service).
using Sides = unsigned;
// The issuing authority, or the central authority of the issuing state.
inline constexpr Sides kIssuingSide = 1u << 0;
// The executing authority routing named, or the central authority of the requested state.
inline constexpr Sides kExecutingSide = 1u << 1;
// The notified (enforcing) authority of a production order (Reg. 2023/1543 Art 8).
inline constexpr Sides kNotifiedAuthority = 1u << 2;
// A Rogatory service (token or certificate `rogatory-<service>`, role service).
inline constexpr Sides kService = 1u << 3;

// The RPC that makes a move into a status: one way of doing each thing.
enum class Via { kTransitionRequest, kAcknowledgeRequest, kWithdrawRequest };

// Who may cause a move into a status, and with which RPC.
struct Cause {
  Sides sides = 0;
  Via via = Via::kTransitionRequest;
};

// "TransitionRequest", "AcknowledgeRequest", "WithdrawRequest".
const char* ViaName(Via via);
// "the executing side (...) or a Rogatory service"; "no side of this request" for none.
std::string DescribeSides(Sides sides);

// One allowed move of a request: to a status, announcing it with an event type, caused by
// whom. The event types are the names deadline-tracking's rules use as triggers
// (events.proto), so a move to FORWARDED emits
// EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY, a move to ARRESTED
// EVENT_TYPE_PERSON_ARRESTED, and so on. The cause depends on the target
// status alone (see kCauses in lifecycle.cc): WITHDRAWN is the issuing side's, through
// WithdrawRequest; ACKNOWLEDGED the executing side's, through AcknowledgeRequest; OBJECTED
// also the notified authority's; every other status the executing side's, through
// TransitionRequest. A Rogatory service may cause each of them (services act for either
// side: routing forwards, an integration withdraws on an issuer's behalf).
struct Move {
  common::v1::RequestStatus to = common::v1::REQUEST_STATUS_UNSPECIFIED;
  common::v1::EventType event = common::v1::EVENT_TYPE_UNSPECIFIED;
  Cause by;
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

  // Every event type a move of any instrument's table announces, sorted.
  std::vector<common::v1::EventType> EventTypes() const;

  // Every status the instrument's table mentions (as origin or target), sorted.
  std::vector<common::v1::RequestStatus> Statuses(common::v1::Instrument instrument) const;

  // Who causes a move into `to` for `instrument`, with which RPC; nullopt when no move of the
  // instrument's table leads there (RECEIVED, which only submission and supplement set;
  // another instrument's statuses).
  std::optional<Cause> CauseOf(common::v1::Instrument instrument,
                               common::v1::RequestStatus to) const;

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
