#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "notification_metrics.h"
#include "notification_settings.h"
#include "notification_store.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/pubsub_listener.h"
#include "wakeups.h"

namespace rogatory::notification {

// Copies each shard's fan-out outbox into the recipients' inboxes, and runs the
// retrieval timers. Runs on its own thread (blocking Redis helpers are allowed
// there, never on gRPC or Redis callback threads).
//
// Why an outbox: a received event must reach several inboxes, each in its
// authority's shard, while the receiving script may touch only the request's
// shard. So the receiving script writes ONE fan-out entry atomically with the
// duplicate marker, and this worker delivers it to each inbox with a
// per-(inbox, notification) marker, so a redelivery after a crash adds nothing
// twice. The fan-out stream is read through a consumer group: replicas share
// the shards, and entries a dead replica had read are claimed after
// `kClaimIdle`.
//
// A batch of entries is delivered with pipelined scripts, all in flight at once (one round
// trip for the batch, not one per recipient), their disclosures audited together (the
// chained audit log group-commits them) and the batch acknowledged and deleted in one
// script (not waited for: the shard's next read follows it on the same connection). Per
// inbox, order is kept even so: each delivery names the marker of the batch's previous
// delivery to the same inbox, and is refused ("blocked") unless that one is in. Only the
// longest prefix of entries whose every delivery succeeded and was audited is
// acknowledged: after a failure the shard's later entries go again (idempotently) after
// the retry. Every shard's round trips of a phase (read, deliver, acknowledge) are in
// flight together.
//
// Wake-ups (issue 19: nothing polls): the event handler wakes the worker (FanoutWakeups) right
// after writing an entry, and the store announces it on Keys::FanoutAppendedChannel, so the
// other replicas' workers wake too (FanoutAppendListener in main.cc); the worker tells the
// inbox's Subscribe readers in this process (InboxWakeups) right after writing a notification.
// Retrieval timers: the worker sleeps until the next one is due. A pass over every shard every
// `fanout_recheck_interval` (>= 5 s in deployments) is only a safety net.
//
// The delivery into an inbox also enqueues the webhook jobs of the recipient's
// matching subscriptions (same shard: an owner's subscriptions live in its
// authority shard), so a subscription only ever sees notifications its owner
// received: a filter cannot reach beyond what its owner may see. The worker filters
// (FilterMatches, with its cache of each owner's subscriptions) and the store's delivery
// checks the owner's subscriptions are still those it filtered; so a delivery stays one
// round trip, plus a retry after the owner's subscriptions changed.
class FanoutWorker {
  // Shards whose acknowledgement failed (set from Redis callbacks, taken by the worker).
  class ShardFlags {
   public:
    explicit ShardFlags(int shards) : flags_(static_cast<size_t>(shards)) {}
    void Set(int shard) { flags_[static_cast<size_t>(shard)].store(true); }
    bool Take(int shard) { return flags_[static_cast<size_t>(shard)].exchange(false); }

   private:
    std::vector<std::atomic<bool>> flags_;
  };

 public:
  FanoutWorker(NotificationStore& store, const common::Clock& clock, common::Sharding sharding,
               NotificationSettings settings, NotificationMetrics& metrics);
  ~FanoutWorker();  // stops and joins the thread

  void Start();
  // The audit log deliveries into inboxes are recorded in (disclosures, issue 8); an entry
  // is acknowledged only once its deliveries are logged. Null: not recorded. Set before
  // Start.
  void SetAuditor(common::Auditor* auditor) { auditor_ = auditor; }
  // The Subscribe readers to wake when a notification is written into their inbox. Null:
  // none. Set before Start.
  void SetInboxWakeups(std::shared_ptr<InboxWakeups> wakeups) {
    inbox_wakeups_ = std::move(wakeups);
  }
  // The webhook dispatcher to wake (by shard) when a delivery enqueued webhook jobs (issue
  // 19). Null: its safety net takes them up. Set before Start.
  void SetWebhookWakeups(std::shared_ptr<FanoutWakeups> wakeups) {
    webhook_wakeups_ = std::move(wakeups);
  }
  // Wakes this worker for fan-out entries other processes wrote: SUBSCRIBEs (a connection of
  // its own) to Keys::FanoutAppendedChannel, ignoring the announcements of `own_publisher`
  // (this process's store: its handler wakes the worker directly); after each
  // (re)subscription every shard is looked at, as a message may have been lost meanwhile.
  // Call before Start.
  void ListenForAppends(common::RedisUrl url, std::string own_publisher);
  // How many times that subscription was confirmed (tests).
  int append_subscriptions() const { return listener_ ? listener_->subscriptions() : 0; }
  // How the event handler wakes this worker (see NotificationEventHandler::SetFanoutWakeups).
  const std::shared_ptr<FanoutWakeups>& wakeups() const { return wakeups_; }
  // One pass over every shard: fan-out, then (when `all`, or when their pace
  // says so) the takeover of entries a dead replica left and the due retrieval
  // timers. Tests call it with `all`; the thread paces the rarer work to keep
  // idle Redis traffic low. Returns the number of fan-out entries delivered.
  int RunOnce(bool all = true);

 private:
  // One pass over `shards`; appends those that delivered something (they may have more) to
  // `busy`.
  int Pass(const std::vector<int>& shards, bool all, std::vector<int>* busy);
  int DeliverShards(const std::vector<int>& shards, bool claim_abandoned, std::vector<int>* busy);
  void Timers(bool all);
  void UpdateGauges();
  // The earliest due time (Unix ms) of any shard's next retrieval timer as far as this worker
  // knows; INT64_MAX: none (or timers are off).
  int64_t NextTimerDueMs() const;

  // What the fan-out knows of an owner's subscriptions: their ids, sorted, and filters (in
  // the order of the ids).
  struct OwnerSubscriptions {
    std::vector<std::string> ids;
    std::vector<EncodedFilter> filters;
  };
  // Reads the subscriptions of `owners` not cached yet (all at once); an owner whose read
  // failed stays uncached.
  void LoadSubscriptions(const std::vector<std::string>& owners);
  // After a delivery answered "retry": the owner's subscriptions are `current` now.
  void UpdateSubscriptions(const std::string& owner, const std::vector<std::string>& current);

  NotificationStore& store_;
  const common::Clock& clock_;
  const common::Sharding sharding_;
  const NotificationSettings settings_;
  NotificationMetrics& metrics_;
  common::Auditor* auditor_ = nullptr;
  std::shared_ptr<InboxWakeups> inbox_wakeups_;
  std::shared_ptr<FanoutWakeups> webhook_wakeups_;
  const std::shared_ptr<FanoutWakeups> wakeups_;
  const std::shared_ptr<ShardFlags> unacked_;
  const std::string consumer_;
  std::vector<bool> group_ready_;  // only touched by the worker's thread
  std::vector<bool> retry_own_;
  // Per shard, when its next retrieval timer is due (Unix ms, by the service clock): answered
  // by each run of its timers, made earlier by each delivered entry (its recipients' timers
  // are due `retrieval_timeout` after its acceptance). Worker thread only.
  std::vector<int64_t> next_timer_ms_;
  // Owners' subscriptions by owner, as last read: the fan-out filters in C++ and names the
  // matched subscriptions to the delivery, whose script checks that the owner's
  // subscription ids are still these (a subscription's filter never changes once created)
  // and answers "retry" otherwise, so a stale entry costs a retry, never a wrong webhook.
  // Bounded (an arbitrary owner is dropped when full); worker thread only.
  std::map<std::string, OwnerSubscriptions> subscriptions_;
  std::unique_ptr<common::PubSubListener> listener_;
  std::thread thread_;
};

// Inbox entry of an escalation: which recipient did not retrieve which event.
std::string EscalationEventId(const std::string& event_id, const std::string& recipient);

}  // namespace rogatory::notification
