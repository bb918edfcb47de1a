#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "notification_metrics.h"
#include "notification_settings.h"
#include "notification_store.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/ids.h"
#include "wakeups.h"

namespace rogatory::notification {

// What one event says about the parties of its request. Later events (deadline
// events, for instance) may say nothing: the handler keeps what earlier events
// said in a per-request party record.
struct PartiesSeen {
  common::v1::AuthorityRef issuing;
  common::v1::AuthorityRef executing;
  common::v1::AuthorityRef central;
  common::v1::AuthorityRef translator;  // only from translation job events
  // Told of the request without executing it (the routing decision's notified_authority:
  // a production order's enforcing authority, Reg. 2023/1543 Art 8).
  common::v1::AuthorityRef notified;
  std::string requested_state;
};
PartiesSeen PartiesOf(const common::v1::Event& event);

// Whether an event type is a translation job change (its translator is told
// about it).
bool IsTranslationJobEvent(common::v1::EventType type);

// What an event does to its request's catch-up list (see NotificationEventHandler): "keep"
// (the start or a change of a deadline: a party joining later must receive it), "drop" (the
// deadline was met or cancelled: its events are no longer owed) or "" (neither).
const char* CatchUpActionOf(const common::v1::Event& event);

// Receives events: in ONE atomic step of the store (NotificationStore::ReceiveEvent) in the
// request's shard (with the duplicate
// marker), updates the party record, records "accepted" evidence for every
// recipient, starts their retrieval timers and appends one entry to the shard's
// fan-out outbox, from which the FanoutWorker copies it into each recipient's
// inbox. A duplicate changes nothing and reaches no one.
//
// An event reaches the parties the request has when it is handled. A party that joins
// later (routing names the executing and central authorities) is owed what it must know of
// the events before: the deadlines running against the request. The handler keeps, per
// request, the events of deadlines still running (started, extended, suspended, resumed,
// missed, escalated; dropped once met or cancelled; at most kCatchUpLimit), and in the step
// of the event that adds a party, appends one fan-out entry per kept event for the new
// party, before the event's own entry: its inbox receives them first, in the order they
// were received, whichever of the deadline start and the routing decision came first.
class NotificationEventHandler final : public common::EventHandler {
 public:
  // Most events a request's catch-up list keeps (the oldest go first); a request has a
  // handful of deadlines with a few changes each.
  static constexpr int kCatchUpLimit = 64;

  NotificationEventHandler(NotificationStore& store, const common::Clock& clock,
                           common::Sharding sharding, NotificationSettings settings,
                           NotificationMetrics& metrics);

  void Handle(const common::v1::Event& event, const common::Dedupe& dedupe,
              std::function<void(absl::StatusOr<Outcome>)> done) override;

  // As Handle, with recipients beyond the event's own parties (PublishEvent).
  void HandleWithExtras(const common::v1::Event& event, const common::Dedupe& dedupe,
                        const std::vector<common::v1::AuthorityRef>& extra_recipients,
                        std::function<void(absl::StatusOr<Outcome>)> done);

  // The fan-out worker of this process, woken (for the event's shard) as soon as an event's
  // fan-out entry is written, instead of at its next poll. Null: none. Set before serving.
  void SetFanoutWakeups(std::shared_ptr<FanoutWakeups> wakeups) {
    fanout_wakeups_ = std::move(wakeups);
  }

 private:
  NotificationStore& store_;
  const common::Clock& clock_;
  const common::Sharding sharding_;
  const NotificationSettings settings_;
  NotificationMetrics& metrics_;
  std::shared_ptr<FanoutWakeups> fanout_wakeups_;
};

}  // namespace rogatory::notification
