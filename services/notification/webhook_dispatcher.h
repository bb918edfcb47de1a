#pragma once

#include <deque>
#include <memory>
#include <random>
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
#include "wakeups.h"
#include "webhook_transport.h"

namespace rogatory::notification {

// Delivers webhook jobs: a poller thread claims due jobs from each shard's
// queue (a claim pushes the job's due time out by a lease, so replicas do not
// take the same job), hands them to a fixed pool of `webhook-concurrency`
// workers through a queue no longer than the pool, and each worker POSTs, signs
// and records the outcome: 2xx ends the job and records "delivered" evidence;
// anything else retries with exponential backoff and jitter until
// `webhook-max-attempts`, then the job moves to the dead-letter list ("failed"
// evidence). Every attempt is logged for the audit trail (event, recipient,
// subscription, outcome; never content). Receiving events never waits on any of
// this.
class WebhookDispatcher {
 public:
  WebhookDispatcher(common::RedisClient& redis, const common::Clock& clock,
                    common::Sharding sharding, NotificationSettings settings,
                    NotificationMetrics& metrics, WebhookTransport& transport);
  ~WebhookDispatcher();  // stops and joins every thread

  void Start();
  // The audit log webhook deliveries are recorded in (disclosures, issue 8). Null: not
  // recorded. Set before Start.
  void SetAuditor(common::Auditor* auditor) { auditor_ = auditor; }

  // How work for the webhook queue wakes the poller (issue 19): the fan-out wakes a shard
  // right after a delivery enqueued webhook jobs in it, a redrive likewise; the poller wakes
  // itself for the retries it schedules and when a worker frees up. Between them it sends
  // Redis nothing, but for its safety-net pass over every shard every
  // `webhook_recheck_interval` (jobs other replicas enqueued and then left).
  const std::shared_ptr<FanoutWakeups>& wakeups() const { return wakeups_; }

  // The delay before attempt `attempt + 1` after `attempt` failed: initial *
  // 2^(attempt-1), capped, with the upper half randomised ("equal jitter").
  absl::Duration Backoff(int attempt);

 private:
  struct Job {
    int shard = 0;
    std::string member;  // "<subscription>/<notification id>"
    std::string event_pb;
    int attempt = 0;
    int64_t accept_ms = 0;
    std::string request_id, event_id, recipient;
    std::string uri, secret, old_secret;
    int64_t old_expire_ms = 0;
  };
  void PollLoop();
  int ClaimShard(int shard, int limit);
  void WorkerLoop();
  void Deliver(const Job& job);

  common::RedisClient& redis_;
  const common::Clock& clock_;
  const common::Sharding sharding_;
  const NotificationSettings settings_;
  NotificationMetrics& metrics_;
  WebhookTransport& transport_;
  common::Auditor* auditor_ = nullptr;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  // The earliest retry this process scheduled (InfiniteFuture: none).
  absl::Time next_retry_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  const std::shared_ptr<FanoutWakeups> wakeups_ = std::make_shared<FanoutWakeups>();
  std::thread poller_;
  std::vector<std::thread> workers_;
};

}  // namespace rogatory::notification
