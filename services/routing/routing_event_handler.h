#pragma once

#include "registry.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/event_sink.h"
#include "routing_metrics.h"
#include "routing_store.h"

namespace rogatory::routing {

// The facts a routing decision rests on, from an event intake emitted.
v1::RoutingFacts FactsFromEvent(const common::v1::Event& event);

// The status a decision asks intake to set: TRANSLATION_PENDING when a translation is
// needed, else the forward status (below), none for an unroutable request (a person
// decides).
common::v1::RequestStatus StatusForDecision(const v1::RoutingDecision& decision);

// The status of a request once it is sent on (directly, or when its last translation is
// done): SENT_TO_PROVIDER for a production order (channel SERVICE_PROVIDER: it goes to a
// provider, not to an authority, and intake's lifecycle has no FORWARDED for it), else
// FORWARDED.
common::v1::RequestStatus ForwardStatusFor(const v1::RoutingDecision& decision);

// What routing does with the events delivered to it, each exactly once in effect (the
// store writes the effect and the duplicate marker in one script):
//  - REQUEST_SUBMITTED / SUPPLEMENTED: decide with the current registry, store the decision,
//    emit ROUTING_DECIDED, queue translation jobs for the documents already known.
//  - DOCUMENT_ADDED: remember the document; queue its job if the decision needs it.
//  - DEADLINE_STARTED / EXTENDED / RESUMED set, MET / CANCELLED / SUSPENDED remove, a
//    deadline of the request: queued jobs are ordered by the earliest one.
//  - REQUEST_WITHDRAWN / REFUSED / CLOSED: cancel the request's pending jobs.
//  - anything else: recorded as handled.
class RoutingEventHandler final : public common::EventHandler {
 public:
  RoutingEventHandler(RoutingStore& store, const RegistryHolder& registry,
                      const common::Clock& clock, common::RedisClient& redis,
                      RoutingMetrics* metrics)
      : store_(store), registry_(registry), clock_(clock), record_only_(redis), metrics_(metrics) {}

  void Handle(const common::v1::Event& event, const common::Dedupe& dedupe,
              std::function<void(absl::StatusOr<Outcome>)> done) override;

 private:
  RoutingStore& store_;
  const RegistryHolder& registry_;
  const common::Clock& clock_;
  common::RecordOnlyEventHandler record_only_;
  RoutingMetrics* metrics_;
};

}  // namespace rogatory::routing
