#include "intake_event_handler.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "intake_service.h"
#include "lifecycle.h"
#include "next_deadline.h"
#include "rogatory/common/logging.h"

namespace rogatory::intake {

namespace commonpb = rogatory::common::v1;

Mutation IntakeEventHandler::Plan(const Snapshot& snap, const commonpb::Event& event,
                                  const common::Dedupe& dedupe) {
  const v1::Request& r = snap.request;
  Mutation m;
  m.id = r.id();
  m.expected_version = snap.version;
  m.dedupe = dedupe;
  commonpb::Event recorded = event;
  const commonpb::RequestStatus target = event.status();
  if (target != commonpb::REQUEST_STATUS_UNSPECIFIED && target != r.status()) {
    auto move = Lifecycle::Default().Find(r.content().instrument(), r.status(), target);
    // A service reports a move the table lets a service make with TransitionRequest; a
    // withdrawal (WithdrawRequest, the issuing side's) or an acknowledgment
    // (AcknowledgeRequest) is never made by report.
    const bool reportable = move.has_value() && move->by.via == Via::kTransitionRequest &&
                            (move->by.sides & kService) != 0;
    if (!reportable) {
      common::Log::Warn(
          "reported status not allowed by the lifecycle; recorded without a status change",
          {{"event_id", event.event_id()},
           {"trace_id", event.trace_id()},
           {"source", event.source()},
           {"type", commonpb::EventType_Name(event.type())},
           {"instrument", commonpb::Instrument_Name(r.content().instrument())},
           {"from", commonpb::RequestStatus_Name(r.status())},
           {"to", commonpb::RequestStatus_Name(target)}});
      // The history keeps what was reported, marked as not applied: no status change.
      recorded.clear_status();
      recorded.set_reason_code(
          absl::StrCat("STATUS_NOT_APPLIED:", commonpb::RequestStatus_Name(target)).substr(0, 64));
    } else {
      const int64_t updated_ms =
          google::protobuf::util::TimeUtil::TimestampToMilliseconds(event.occur_time());
      const absl::Time when = absl::FromUnixMillis(updated_ms);
      m.new_version = snap.version + 1;
      m.updated_ms = updated_ms;
      m.fields.emplace_back("status", absl::StrCat(static_cast<int>(target)));
      m.fields_before = IndexedFieldsOf(r);
      // The status change is the announced entry's; the reported one keeps the cause.
      recorded.clear_status();
      v1::Request after = r;
      after.set_status(target);
      if (event.has_routing_decided() && event.routing_decided().has_competent_authority()) {
        *after.mutable_executing_authority() = event.routing_decided().competent_authority();
        m.request = after;
        // The executing authority now reaches the request (need-to-know party index).
        m.fields.emplace_back("executing_authority", after.executing_authority().authority_id());
      }
      // The authority the decision names to be told (a production order's enforcing
      // authority, Reg. 2023/1543 Art 8) reads the request and may object.
      if (event.has_routing_decided() && event.routing_decided().has_notified_authority()) {
        *after.mutable_notified_authority() = event.routing_decided().notified_authority();
        m.request = after;
      }
      // intake announces the move under its lifecycle name, as if a caller had made it.
      commonpb::Event announced =
          NewIntakeEvent(after, move->event, *m.new_version, when, event.actor());
      announced.set_status(target);
      announced.set_previous_status(r.status());
      announced.set_reason_code(event.reason_code());
      announced.set_legal_basis(event.legal_basis());
      if (!event.trace_id().empty()) announced.set_trace_id(event.trace_id());
      if (after.has_executing_authority()) {
        *announced.mutable_status_change()->mutable_to_authority() = after.executing_authority();
      }
      // The history keeps what was reported, then the status change as its own entry under
      // the name deadlines and notifications use (the trigger a limit names must be found
      // in the history), the same event the outbox announces.
      m.history.push_back(std::move(recorded));
      m.history.push_back(announced);
      m.outbox.push_back(std::move(announced));
      return m;
    }
  }
  // A deadline event moves the request's next deadline, in the same step that records it
  // (and sets the dedupe marker): no recount. The next deadline is kept apart from the
  // request's content (hash field `nd`, see Mutation::fields): deadline-tracking's
  // bookkeeping neither changes the etag (a caller's guarded change stays valid) nor is
  // undone by a change computed on an older snapshot. Its due time is a hash field the
  // worklist rows carry.
  v1::Request after = r;
  if (ApplyDeadlineEvent(event, &after)) {
    m.fields_before = IndexedFieldsOf(r);
    const std::optional<int64_t> due = NextDueMs(after);
    m.fields.emplace_back("next_due_ms", due ? absl::StrCat(*due) : "");
    m.fields.emplace_back("nd", after.has_next_deadline()
                                    ? after.next_deadline().SerializeAsString()
                                    : std::string());
  }
  // A reminder changes the at-risk mark only: the history keeps the deadline's start,
  // extensions, misses and settlement, not each reminder (notification tells the parties).
  if (event.type() == commonpb::EVENT_TYPE_DEADLINE_REMINDER) return m;
  m.history.push_back(std::move(recorded));
  return m;
}

void IntakeEventHandler::Handle(const commonpb::Event& event, const common::Dedupe& dedupe,
                                std::function<void(absl::StatusOr<Outcome>)> done) {
  Attempt(event, dedupe, kAttempts, std::move(done));
}

void IntakeEventHandler::Attempt(commonpb::Event event, common::Dedupe dedupe, int attempts_left,
                                 std::function<void(absl::StatusOr<Outcome>)> done) {
  const std::string id = event.request_id();
  store_.Load(
      id, std::nullopt,
      [this, event = std::move(event), dedupe = std::move(dedupe), attempts_left,
       done = std::move(done)](absl::StatusOr<Snapshot> snap) mutable {
        auto finish = [done, &event](absl::StatusOr<Outcome> outcome) {
          if (outcome.status().code() == absl::StatusCode::kNotFound) {
            common::Log::Warn("event about an unknown request dropped",
                              {{"event_id", event.event_id()}, {"trace_id", event.trace_id()}});
            return done(Outcome::kHandled);
          }
          done(std::move(outcome));
        };
        if (!snap.ok()) return finish(snap.status());
        Mutation m = Plan(*snap, event, dedupe);
        store_.Mutate(std::move(m), [this, event = std::move(event), dedupe = std::move(dedupe),
                                     attempts_left, done = std::move(done)](
                                        absl::StatusOr<MutationOutcome> outcome) mutable {
          if (!outcome.ok()) {
            if (IsStaleVersion(outcome.status()) && attempts_left > 1) {
              return Attempt(std::move(event), std::move(dedupe), attempts_left - 1,
                             std::move(done));
            }
            if (outcome.status().code() == absl::StatusCode::kNotFound) {
              common::Log::Warn("event about an unknown request dropped",
                                {{"event_id", event.event_id()}, {"trace_id", event.trace_id()}});
              return done(Outcome::kHandled);
            }
            return done(outcome.status());
          }
          done(outcome->kind == MutationOutcome::Kind::kDuplicate ? Outcome::kDuplicate
                                                                  : Outcome::kHandled);
        });
      });
}

}  // namespace rogatory::intake
