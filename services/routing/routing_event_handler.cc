#include "routing_event_handler.h"

#include "google/protobuf/util/time_util.h"
#include "rogatory/common/logging.h"
#include "router.h"

namespace rogatory::routing {

namespace cv1 = common::v1;

v1::RoutingFacts FactsFromEvent(const cv1::Event& event) {
  v1::RoutingFacts f;
  f.set_instrument(event.instrument());
  f.set_issuing_state(event.request().issuing_authority().state());
  f.set_requested_state(event.request().requested_state());
  f.set_source_language(event.request().source_language());
  f.set_urgency(event.request().urgency());
  f.set_region(event.request().executing_authority().region());
  if (event.request().has_service_provider()) {
    *f.mutable_service_provider() = event.request().service_provider();
  }
  f.set_enforcing_state(event.request().enforcing_state());
  f.set_traffic_or_content_data(event.request().traffic_or_content_data());
  return f;
}

cv1::RequestStatus ForwardStatusFor(const v1::RoutingDecision& d) {
  return d.channel() == cv1::CHANNEL_SERVICE_PROVIDER ? cv1::REQUEST_STATUS_SENT_TO_PROVIDER
                                                      : cv1::REQUEST_STATUS_FORWARDED;
}

cv1::RequestStatus StatusForDecision(const v1::RoutingDecision& d) {
  if (d.unroutable()) return cv1::REQUEST_STATUS_UNSPECIFIED;
  return d.translation_required() ? cv1::REQUEST_STATUS_TRANSLATION_PENDING : ForwardStatusFor(d);
}

void RoutingEventHandler::Handle(const cv1::Event& event, const common::Dedupe& dedupe,
                                 std::function<void(absl::StatusOr<Outcome>)> done) {
  const absl::Time now = clock_.Now();
  switch (event.type()) {
    case cv1::EVENT_TYPE_REQUEST_SUBMITTED:
    case cv1::EVENT_TYPE_REQUEST_SUPPLEMENTED: {
      v1::RoutingDecision decision = DecideRouting(FactsFromEvent(event), *registry_.Get(), now);
      decision.set_request_id(event.request_id());
      const bool unroutable = decision.unroutable();
      if (unroutable) {
        common::Log::Warn("request cannot be routed; flagged for a person",
                          {{"trace_id", event.trace_id()},
                           {"reason", decision.reasons(decision.reasons_size() - 1).code()}});
      }
      return store_.RecordDecision(
          event, decision, StatusForDecision(decision), dedupe, now,
          [done, unroutable, metrics = metrics_](absl::StatusOr<Outcome> outcome) {
            if (outcome.ok() && *outcome == Outcome::kHandled && unroutable && metrics) {
              metrics->Unroutable();
            }
            done(std::move(outcome));
          });
    }
    case cv1::EVENT_TYPE_DOCUMENT_ADDED:
      if (!event.has_document() || event.document().document_id().empty()) {
        common::Log::Warn("DOCUMENT_ADDED without a document; recorded only",
                          {{"event_id", event.event_id()}, {"trace_id", event.trace_id()}});
        return record_only_.Handle(event, dedupe, std::move(done));
      }
      return store_.AddDocument(event, dedupe, now, std::move(done));
    case cv1::EVENT_TYPE_DEADLINE_STARTED:
    case cv1::EVENT_TYPE_DEADLINE_EXTENDED:
    case cv1::EVENT_TYPE_DEADLINE_RESUMED:
    case cv1::EVENT_TYPE_DEADLINE_MET:
    case cv1::EVENT_TYPE_DEADLINE_CANCELLED:
    case cv1::EVENT_TYPE_DEADLINE_SUSPENDED: {
      const bool sets = event.type() == cv1::EVENT_TYPE_DEADLINE_STARTED ||
                        event.type() == cv1::EVENT_TYPE_DEADLINE_EXTENDED ||
                        event.type() == cv1::EVENT_TYPE_DEADLINE_RESUMED;
      std::optional<absl::Time> due;
      if (sets) {
        if (!event.deadline().has_due_time()) return record_only_.Handle(event, dedupe, done);
        due = absl::FromUnixMillis(
            google::protobuf::util::TimeUtil::TimestampToMilliseconds(event.deadline().due_time()));
      }
      cv1::Event keyed = event;
      if (keyed.deadline().deadline_id().empty()) {
        // Without an id, the rule names the deadline (one deadline per rule and request).
        keyed.mutable_deadline()->set_deadline_id(keyed.deadline().rule_id());
      }
      return store_.UpdateDeadline(keyed, due, dedupe, std::move(done));
    }
    case cv1::EVENT_TYPE_REQUEST_WITHDRAWN:
    case cv1::EVENT_TYPE_REQUEST_REFUSED:
    case cv1::EVENT_TYPE_REQUEST_CLOSED:
      return store_.EndRequest(event, dedupe, now, std::move(done));
    case cv1::EVENT_TYPE_REQUEST_ERASED:
      return store_.EraseRequest(event, dedupe, now, std::move(done));
    default:
      return record_only_.Handle(event, dedupe, std::move(done));
  }
}

}  // namespace rogatory::routing
