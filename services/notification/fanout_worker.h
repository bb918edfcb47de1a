#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "notification_metrics.h"
#include "notification_settings.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/redis.h"

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
// The delivery into an inbox also enqueues the webhook jobs of the recipient's
// matching subscriptions (same shard: an owner's subscriptions live in its
// authority shard), so a subscription only ever sees notifications its owner
// received: a filter cannot reach beyond what its owner may see.
class FanoutWorker {
 public:
  FanoutWorker(common::RedisClient &redis, const common::Clock &clock, common::Sharding sharding,
               NotificationSettings settings, NotificationMetrics &metrics);
  ~FanoutWorker();  // stops and joins the thread

  void Start();
  // The audit log deliveries into inboxes are recorded in (disclosures, issue 8); an entry
  // is acknowledged only once its deliveries are logged. Null: not recorded. Set before
  // Start.
  void SetAuditor(common::Auditor *auditor) { auditor_ = auditor; }
  // One pass over every shard: fan-out, then (when `all`, or when their pace
  // says so) the takeover of entries a dead replica left and the due retrieval
  // timers. Tests call it with `all`; the thread paces the rarer work to keep
  // idle Redis traffic low. Returns the number of fan-out entries delivered.
  int RunOnce(bool all = true);

 private:
  int DeliverShard(int shard, bool claim_abandoned);
  void TimersShard(int shard);
  void UpdateGauges();

  common::RedisClient &redis_;
  const common::Clock &clock_;
  const common::Sharding sharding_;
  const NotificationSettings settings_;
  NotificationMetrics &metrics_;
  common::Auditor *auditor_ = nullptr;
  const std::string consumer_;
  std::vector<bool> group_ready_;  // only touched by the worker's thread
  std::vector<bool> retry_own_;
  absl::Time next_slow_work_ = absl::InfinitePast();  // worker thread only
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Inbox entry of an escalation: which recipient did not retrieve which event.
std::string EscalationEventId(const std::string &event_id, const std::string &recipient);

}  // namespace rogatory::notification
