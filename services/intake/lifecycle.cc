#include "lifecycle.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>

#include "absl/strings/str_join.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;

// Short names for the table.
constexpr pb::RequestStatus RECEIVED = pb::REQUEST_STATUS_RECEIVED;
constexpr pb::RequestStatus ACKNOWLEDGED = pb::REQUEST_STATUS_ACKNOWLEDGED;
constexpr pb::RequestStatus INCOMPLETE = pb::REQUEST_STATUS_INCOMPLETE;
constexpr pb::RequestStatus TRANSLATION_PENDING = pb::REQUEST_STATUS_TRANSLATION_PENDING;
constexpr pb::RequestStatus FORWARDED = pb::REQUEST_STATUS_FORWARDED;
constexpr pb::RequestStatus RECOGNISED = pb::REQUEST_STATUS_RECOGNISED;
constexpr pb::RequestStatus REFUSED = pb::REQUEST_STATUS_REFUSED;
constexpr pb::RequestStatus POSTPONED = pb::REQUEST_STATUS_POSTPONED;
constexpr pb::RequestStatus IN_EXECUTION = pb::REQUEST_STATUS_IN_EXECUTION;
constexpr pb::RequestStatus EXECUTED = pb::REQUEST_STATUS_EXECUTED;
constexpr pb::RequestStatus PARTIALLY_EXECUTED = pb::REQUEST_STATUS_PARTIALLY_EXECUTED;
constexpr pb::RequestStatus WITHDRAWN = pb::REQUEST_STATUS_WITHDRAWN;
constexpr pb::RequestStatus CLOSED = pb::REQUEST_STATUS_CLOSED;
constexpr pb::RequestStatus SUSPENDED = pb::REQUEST_STATUS_SUSPENDED;
constexpr pb::RequestStatus ARRESTED = pb::REQUEST_STATUS_ARRESTED;
constexpr pb::RequestStatus CONSENT_GIVEN = pb::REQUEST_STATUS_CONSENT_GIVEN;
constexpr pb::RequestStatus CONSENT_REFUSED = pb::REQUEST_STATUS_CONSENT_REFUSED;
constexpr pb::RequestStatus FINAL_DECISION = pb::REQUEST_STATUS_FINAL_DECISION;
constexpr pb::RequestStatus SURRENDERED = pb::REQUEST_STATUS_SURRENDERED;
constexpr pb::RequestStatus RELEASED = pb::REQUEST_STATUS_RELEASED;
constexpr pb::RequestStatus PROVISIONALLY_ARRESTED = pb::REQUEST_STATUS_PROVISIONALLY_ARRESTED;
constexpr pb::RequestStatus FORMAL_REQUEST_RECEIVED = pb::REQUEST_STATUS_FORMAL_REQUEST_RECEIVED;
constexpr pb::RequestStatus SENT_TO_PROVIDER = pb::REQUEST_STATUS_SENT_TO_PROVIDER;
constexpr pb::RequestStatus DATA_PRODUCED = pb::REQUEST_STATUS_DATA_PRODUCED;
constexpr pb::RequestStatus OBJECTED = pb::REQUEST_STATUS_OBJECTED;

// The event each target status is announced with, unless a row says otherwise (moves out of
// SUSPENDED and POSTPONED back into the flow announce REQUEST_RESUMED).
pb::EventType EventFor(pb::RequestStatus to) {
  switch (to) {
    case ACKNOWLEDGED:
      return pb::EVENT_TYPE_REQUEST_ACKNOWLEDGED;
    case INCOMPLETE:
      return pb::EVENT_TYPE_REQUEST_INCOMPLETE;
    case TRANSLATION_PENDING:
      return pb::EVENT_TYPE_REQUEST_TRANSLATION_PENDING;
    case FORWARDED:
      return pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY;
    case RECOGNISED:
      return pb::EVENT_TYPE_REQUEST_RECOGNISED;
    case REFUSED:
      return pb::EVENT_TYPE_REQUEST_REFUSED;
    case POSTPONED:
      return pb::EVENT_TYPE_REQUEST_POSTPONED;
    case IN_EXECUTION:
      return pb::EVENT_TYPE_REQUEST_EXECUTION_STARTED;
    case EXECUTED:
      return pb::EVENT_TYPE_REQUEST_EXECUTED;
    case PARTIALLY_EXECUTED:
      return pb::EVENT_TYPE_REQUEST_PARTIALLY_EXECUTED;
    case WITHDRAWN:
      return pb::EVENT_TYPE_REQUEST_WITHDRAWN;
    case CLOSED:
      return pb::EVENT_TYPE_REQUEST_CLOSED;
    case SUSPENDED:
      return pb::EVENT_TYPE_REQUEST_SUSPENDED;
    case ARRESTED:
      return pb::EVENT_TYPE_PERSON_ARRESTED;
    case CONSENT_GIVEN:
      return pb::EVENT_TYPE_CONSENT_GIVEN;
    case CONSENT_REFUSED:
      return pb::EVENT_TYPE_CONSENT_REFUSED;
    case FINAL_DECISION:
      return pb::EVENT_TYPE_FINAL_DECISION;
    case SURRENDERED:
      return pb::EVENT_TYPE_PERSON_SURRENDERED;
    case RELEASED:
      return pb::EVENT_TYPE_PERSON_RELEASED;
    case PROVISIONALLY_ARRESTED:
      return pb::EVENT_TYPE_PROVISIONAL_ARREST;
    case FORMAL_REQUEST_RECEIVED:
      return pb::EVENT_TYPE_FORMAL_REQUEST_RECEIVED;
    case SENT_TO_PROVIDER:
      return pb::EVENT_TYPE_SENT_TO_PROVIDER;
    case DATA_PRODUCED:
      return pb::EVENT_TYPE_DATA_PRODUCED;
    case OBJECTED:
      return pb::EVENT_TYPE_ENFORCING_AUTHORITY_OBJECTED;
    default:
      return pb::EVENT_TYPE_UNSPECIFIED;
  }
}

// Who causes a move into each status, and with which RPC (issue 16 item 3). Every status a
// move of the table leads to has its line here (BuildRows refuses a move without one).
// - WITHDRAWN: the issuer's decision alone (its issuing authority, or the central authority
//   of its state), made with WithdrawRequest; never a TransitionRequest, so the executing
//   side cannot end a request it was asked to execute by calling it withdrawn.
// - ACKNOWLEDGED: the competent executing authority's acknowledgment of an EIO (Directive
//   2014/41/EU Art 16(1), Annex B), made with AcknowledgeRequest.
// - OBJECTED: a production order's enforcing authority objects (Reg. 2023/1543 Art 8); the
//   addressee's side may record the objection too.
// - everything else: what the executing side decides or observes (forwarding, recognition,
//   refusal, execution, arrest, surrender, closing the file...), with TransitionRequest.
// A Rogatory service may cause each of them: services act for either side (routing
//   forwards and sends to providers; an integration may withdraw on an issuer's behalf).
struct CauseLine {
  pb::RequestStatus to;
  Cause cause;
};
constexpr Sides kExecutor = kExecutingSide | kService;
constexpr Cause kByExecutor{kExecutor, Via::kTransitionRequest};
const CauseLine kCauses[] = {
    {INCOMPLETE, kByExecutor},
    {TRANSLATION_PENDING, kByExecutor},
    {FORWARDED, kByExecutor},
    {ACKNOWLEDGED, {kExecutor, Via::kAcknowledgeRequest}},
    {RECOGNISED, kByExecutor},
    {REFUSED, kByExecutor},
    {POSTPONED, kByExecutor},
    {IN_EXECUTION, kByExecutor},
    {EXECUTED, kByExecutor},
    {PARTIALLY_EXECUTED, kByExecutor},
    {WITHDRAWN, {kIssuingSide | kService, Via::kWithdrawRequest}},
    {CLOSED, kByExecutor},
    {SUSPENDED, kByExecutor},
    {ARRESTED, kByExecutor},
    {CONSENT_GIVEN, kByExecutor},
    {CONSENT_REFUSED, kByExecutor},
    {FINAL_DECISION, kByExecutor},
    {SURRENDERED, kByExecutor},
    {RELEASED, kByExecutor},
    {PROVISIONALLY_ARRESTED, kByExecutor},
    {FORMAL_REQUEST_RECEIVED, kByExecutor},
    {SENT_TO_PROVIDER, kByExecutor},
    {DATA_PRODUCED, kByExecutor},
    {OBJECTED, {kExecutor | kNotifiedAuthority, Via::kTransitionRequest}},
};

Cause CauseFor(pb::RequestStatus to) {
  for (const CauseLine& line : kCauses) {
    if (line.to == to) return line.cause;
  }
  // A programming error in the table above: a move nobody may make.
  std::abort();
}

// A table line: from a status, the statuses it may move to (announced with EventFor).
struct Line {
  pb::RequestStatus from;
  std::vector<pb::RequestStatus> to;
  // Targets announced as REQUEST_RESUMED (a return into the flow after a pause).
  std::vector<pb::RequestStatus> resumes = {};
};

// ---------------------------------------------------------------------------------------
// THE TABLE. Sources: shared/domain.md (instruments and their typical paths).
// Every open status may also be withdrawn by the issuer; every outcome is closed.
// ---------------------------------------------------------------------------------------

// Intake steps every instrument addressed to an authority shares: receipt, return as
// incomplete, translation, forwarding to the competent authority. No acknowledgment here:
// only the EIO has one (Directive 2014/41/EU Art 16(1), Annex B), and it is the competent
// executing authority's, after it received the order (see EioTable). The 1959 Convention,
// the EAW Framework Decision, the 1957 Convention and Regulation 2018/1805 ask for none.
std::vector<Line> FrontOffice(std::vector<pb::RequestStatus> extra_from_received = {}) {
  std::vector<pb::RequestStatus> from_received = {INCOMPLETE, TRANSLATION_PENDING, FORWARDED,
                                                  REFUSED, WITHDRAWN};
  from_received.insert(from_received.end(), extra_from_received.begin(), extra_from_received.end());
  return {
      {RECEIVED, from_received},
      {INCOMPLETE, {REFUSED, WITHDRAWN, CLOSED}},
      {TRANSLATION_PENDING, {FORWARDED, INCOMPLETE, REFUSED, WITHDRAWN}},
  };
}

// Outcomes end in CLOSED.
std::vector<Line> Closing(std::vector<pb::RequestStatus> outcomes) {
  std::vector<Line> out;
  for (auto s : outcomes) out.push_back({s, {CLOSED}});
  return out;
}

std::vector<Line> Concat(std::vector<std::vector<Line>> parts) {
  std::vector<Line> out;
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// European Investigation Order (Directive 2014/41/EU): forwarded to the competent
// authority (Art 12(3) trigger), which acknowledges receipt within a week (Art 16(1),
// Annex B; IntakeService::AcknowledgeRequest), recognised / refused (Art 11) / postponed
// (Art 15), executed in full or in part (Art 13), suspended while information is awaited.
// An acknowledged order goes on as a forwarded one does.
std::vector<Line> EioTable() {
  const std::vector<pb::RequestStatus> after_receipt = {RECOGNISED, REFUSED,   POSTPONED,
                                                        INCOMPLETE, SUSPENDED, WITHDRAWN};
  std::vector<pb::RequestStatus> from_forwarded = {ACKNOWLEDGED};
  from_forwarded.insert(from_forwarded.end(), after_receipt.begin(), after_receipt.end());
  return Concat({
      FrontOffice(),
      {
          {FORWARDED, from_forwarded},
          {ACKNOWLEDGED, after_receipt},
          {RECOGNISED, {IN_EXECUTION, POSTPONED, SUSPENDED, WITHDRAWN}},
          {POSTPONED, {RECOGNISED, IN_EXECUTION, REFUSED, WITHDRAWN}, {IN_EXECUTION}},
          {IN_EXECUTION, {EXECUTED, PARTIALLY_EXECUTED, POSTPONED, SUSPENDED, WITHDRAWN}},
          {SUSPENDED,
           {FORWARDED, RECOGNISED, IN_EXECUTION, REFUSED, WITHDRAWN},
           {FORWARDED, RECOGNISED, IN_EXECUTION}},
      },
      Closing({REFUSED, EXECUTED, PARTIALLY_EXECUTED, WITHDRAWN}),
  });
}

// Mutual legal assistance (1959 Convention): no formal recognition step; forwarded, then
// executed (evidence returned), refused (Art 2) or postponed.
std::vector<Line> MlaTable() {
  return Concat({
      FrontOffice(),
      {
          {FORWARDED, {IN_EXECUTION, REFUSED, POSTPONED, INCOMPLETE, SUSPENDED, WITHDRAWN}},
          {POSTPONED, {IN_EXECUTION, REFUSED, WITHDRAWN}, {IN_EXECUTION}},
          {IN_EXECUTION, {EXECUTED, PARTIALLY_EXECUTED, POSTPONED, SUSPENDED, WITHDRAWN}},
          {SUSPENDED, {FORWARDED, IN_EXECUTION, REFUSED, WITHDRAWN}, {FORWARDED, IN_EXECUTION}},
      },
      Closing({REFUSED, EXECUTED, PARTIALLY_EXECUTED, WITHDRAWN}),
  });
}

// European Arrest Warrant (FD 2002/584/JHA): arrest (possibly on a SIS alert before the
// form arrives), consent or not (Art 13), final decision (Art 17), surrender (Art 23) or
// postponed surrender (Art 24), release.
std::vector<Line> EawTable() {
  return Concat({
      FrontOffice({ARRESTED}),
      {
          {FORWARDED, {ARRESTED, REFUSED, INCOMPLETE, SUSPENDED, WITHDRAWN}},
          {ARRESTED, {CONSENT_GIVEN, CONSENT_REFUSED, REFUSED, RELEASED, WITHDRAWN}},
          {CONSENT_GIVEN, {FINAL_DECISION, REFUSED, WITHDRAWN}},
          {CONSENT_REFUSED, {FINAL_DECISION, REFUSED, RELEASED, WITHDRAWN}},
          {FINAL_DECISION, {SURRENDERED, POSTPONED, RELEASED}},
          {POSTPONED, {SURRENDERED, RELEASED}},
          {SUSPENDED, {FORWARDED, ARRESTED, REFUSED, WITHDRAWN}, {FORWARDED}},
      },
      Closing({REFUSED, SURRENDERED, RELEASED, WITHDRAWN}),
  });
}

// Extradition (ECE 1957, bilateral treaties): the person may already be provisionally
// arrested (Art 16); the formal request is received, the person arrested, consents or not,
// a final decision is taken, then surrender (Art 18) or release.
std::vector<Line> ExtraditionTable() {
  return Concat({
      FrontOffice({FORMAL_REQUEST_RECEIVED, PROVISIONALLY_ARRESTED}),
      {
          {FORWARDED,
           {FORMAL_REQUEST_RECEIVED, PROVISIONALLY_ARRESTED, ARRESTED, REFUSED, INCOMPLETE,
            SUSPENDED, WITHDRAWN}},
          {PROVISIONALLY_ARRESTED, {FORMAL_REQUEST_RECEIVED, CONSENT_GIVEN, RELEASED, WITHDRAWN}},
          {FORMAL_REQUEST_RECEIVED,
           {ARRESTED, CONSENT_GIVEN, CONSENT_REFUSED, FINAL_DECISION, REFUSED, RELEASED,
            WITHDRAWN}},
          {ARRESTED,
           {CONSENT_GIVEN, CONSENT_REFUSED, FINAL_DECISION, REFUSED, RELEASED, WITHDRAWN}},
          {CONSENT_GIVEN, {FINAL_DECISION, REFUSED, WITHDRAWN}},
          {CONSENT_REFUSED, {FINAL_DECISION, REFUSED, RELEASED, WITHDRAWN}},
          {FINAL_DECISION, {SURRENDERED, POSTPONED, RELEASED}},
          {POSTPONED, {SURRENDERED, RELEASED}},
          {SUSPENDED,
           {FORWARDED, FORMAL_REQUEST_RECEIVED, REFUSED, WITHDRAWN},
           {FORWARDED, FORMAL_REQUEST_RECEIVED}},
      },
      Closing({REFUSED, SURRENDERED, RELEASED, WITHDRAWN}),
  });
}

// Provisional arrest (ECE Art 16): arrest pending the formal request, which either arrives
// (the extradition request takes over: closed) or not (release after 18 / 40 days); the
// person may consent to surrender (ECE 3rd Protocol).
std::vector<Line> ProvisionalArrestTable() {
  return Concat({
      FrontOffice({PROVISIONALLY_ARRESTED}),
      {
          {FORWARDED, {PROVISIONALLY_ARRESTED, REFUSED, INCOMPLETE, WITHDRAWN}},
          {PROVISIONALLY_ARRESTED, {FORMAL_REQUEST_RECEIVED, CONSENT_GIVEN, RELEASED, WITHDRAWN}},
          {CONSENT_GIVEN, {FINAL_DECISION, RELEASED, WITHDRAWN}},
          {FINAL_DECISION, {SURRENDERED, RELEASED}},
      },
      Closing({REFUSED, FORMAL_REQUEST_RECEIVED, SURRENDERED, RELEASED, WITHDRAWN}),
  });
}

// Freezing and confiscation orders (Regulation (EU) 2018/1805): recognition (48 hours when
// urgent), execution, postponement (Art 10), refusal (Art 8), partial execution.
std::vector<Line> FreezingOrderTable() {
  return Concat({
      FrontOffice(),
      {
          {FORWARDED, {RECOGNISED, REFUSED, POSTPONED, INCOMPLETE, SUSPENDED, WITHDRAWN}},
          {RECOGNISED, {IN_EXECUTION, POSTPONED, WITHDRAWN}},
          {POSTPONED, {RECOGNISED, IN_EXECUTION, REFUSED, WITHDRAWN}, {IN_EXECUTION}},
          {IN_EXECUTION, {EXECUTED, PARTIALLY_EXECUTED, POSTPONED, WITHDRAWN}},
          {SUSPENDED, {FORWARDED, RECOGNISED, REFUSED, WITHDRAWN}, {FORWARDED, RECOGNISED}},
      },
      Closing({REFUSED, EXECUTED, PARTIALLY_EXECUTED, WITHDRAWN}),
  });
}

// European Production Order (Regulation (EU) 2023/1543): addressed to a service provider,
// not an authority (no forwarding, no recognition); the provider produces the data, or the
// enforcing authority objects (after which the order is refused or the data produced).
std::vector<Line> ProductionOrderTable() {
  return Concat({
      {
          {RECEIVED, {INCOMPLETE, TRANSLATION_PENDING, SENT_TO_PROVIDER, WITHDRAWN}},
          {INCOMPLETE, {WITHDRAWN, CLOSED}},
          {TRANSLATION_PENDING, {SENT_TO_PROVIDER, INCOMPLETE, WITHDRAWN}},
          {SENT_TO_PROVIDER, {DATA_PRODUCED, OBJECTED, REFUSED, WITHDRAWN}},
          {OBJECTED, {DATA_PRODUCED, REFUSED, WITHDRAWN}},
      },
      Closing({DATA_PRODUCED, REFUSED, WITHDRAWN}),
  });
}

std::vector<Lifecycle::Row> BuildRows() {
  std::vector<Lifecycle::Row> rows;
  auto add = [&](pb::Instrument instrument, const std::vector<Line>& lines) {
    for (const Line& line : lines) {
      Lifecycle::Row row{instrument, line.from, {}};
      for (pb::RequestStatus to : line.to) {
        const bool resumes =
            std::find(line.resumes.begin(), line.resumes.end(), to) != line.resumes.end();
        row.moves.push_back(
            {to, resumes ? pb::EVENT_TYPE_REQUEST_RESUMED : EventFor(to), CauseFor(to)});
      }
      rows.push_back(std::move(row));
    }
  };
  add(pb::INSTRUMENT_MLA, MlaTable());
  add(pb::INSTRUMENT_EIO, EioTable());
  add(pb::INSTRUMENT_EAW, EawTable());
  add(pb::INSTRUMENT_EXTRADITION, ExtraditionTable());
  add(pb::INSTRUMENT_PROVISIONAL_ARREST, ProvisionalArrestTable());
  add(pb::INSTRUMENT_FREEZING_ORDER, FreezingOrderTable());
  add(pb::INSTRUMENT_PRODUCTION_ORDER, ProductionOrderTable());
  return rows;
}

}  // namespace

const char* ViaName(Via via) {
  switch (via) {
    case Via::kTransitionRequest:
      return "TransitionRequest";
    case Via::kAcknowledgeRequest:
      return "AcknowledgeRequest";
    case Via::kWithdrawRequest:
      return "WithdrawRequest";
  }
  return "?";
}

std::string DescribeSides(Sides sides) {
  std::vector<std::string> names;
  if (sides & kIssuingSide) {
    names.push_back(
        "the issuing side (the issuing authority or the central authority of the issuing "
        "state)");
  }
  if (sides & kExecutingSide) {
    names.push_back(
        "the executing side (the executing authority routing named or the central authority "
        "of the requested state)");
  }
  if (sides & kNotifiedAuthority) names.push_back("the notified (enforcing) authority");
  if (sides & kService) names.push_back("a Rogatory service");
  return names.empty() ? "no side of this request" : absl::StrJoin(names, " or ");
}

Lifecycle::Lifecycle(std::vector<Row> rows) : rows_(std::move(rows)) {}

std::vector<pb::EventType> Lifecycle::EventTypes() const {
  std::set<pb::EventType> types;
  for (const Row& row : rows_) {
    for (const Move& move : row.moves) types.insert(move.event);
  }
  return {types.begin(), types.end()};
}

const Lifecycle& Lifecycle::Default() {
  static const Lifecycle* lifecycle = new Lifecycle(BuildRows());
  return *lifecycle;
}

const std::vector<Move>& Lifecycle::MovesFrom(pb::Instrument instrument,
                                              pb::RequestStatus from) const {
  static const std::vector<Move>* none = new std::vector<Move>();
  for (const Row& row : rows_) {
    if (row.instrument == instrument && row.from == from) return row.moves;
  }
  return *none;
}

std::optional<Move> Lifecycle::Find(pb::Instrument instrument, pb::RequestStatus from,
                                    pb::RequestStatus to) const {
  for (const Move& m : MovesFrom(instrument, from)) {
    if (m.to == to) return m;
  }
  return std::nullopt;
}

std::optional<Cause> Lifecycle::CauseOf(pb::Instrument instrument, pb::RequestStatus to) const {
  for (const Row& row : rows_) {
    if (row.instrument != instrument) continue;
    for (const Move& m : row.moves) {
      if (m.to == to) return m.by;
    }
  }
  return std::nullopt;
}

bool Lifecycle::IsOpen(pb::Instrument instrument, pb::RequestStatus status) const {
  const auto& moves = MovesFrom(instrument, status);
  return std::any_of(moves.begin(), moves.end(), [](const Move& m) { return m.to != CLOSED; });
}

std::vector<pb::RequestStatus> Lifecycle::Statuses(pb::Instrument instrument) const {
  std::set<pb::RequestStatus> out;
  for (const Row& row : rows_) {
    if (row.instrument != instrument) continue;
    out.insert(row.from);
    for (const Move& m : row.moves) out.insert(m.to);
  }
  return {out.begin(), out.end()};
}

std::string Lifecycle::DescribeMovesFrom(pb::Instrument instrument, pb::RequestStatus from) const {
  std::vector<std::string> names;
  for (const Move& m : MovesFrom(instrument, from)) {
    names.push_back(pb::RequestStatus_Name(m.to));
  }
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

}  // namespace rogatory::intake
