#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "notification_event_handler.h"
#include "notification_metrics.h"
#include "notification_settings.h"
#include "notification_store.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/redis.h"
#include "rogatory/notification/v1/notification.grpc.pb.h"
#include "subscription_filter.h"
#include "wakeups.h"

namespace rogatory::notification {

struct SubscribeStream;  // one open Subscribe stream (subscribe_reactor.h)

// rogatory.notification.v1.NotificationService on the callback API. Unary RPCs
// go through Pipeline::Unary and complete from Redis callbacks; Subscribe
// streams through a reactor whose reads go through the asynchronous Redis client
// into a bounded read-ahead buffer. No stream holds a thread and no idle stream
// polls Redis: reads start when an append to the inbox wakes it (the fan-out of this
// process directly, other replicas' through Redis pub/sub: InboxAppendListener), when the
// client makes room, after the pub/sub listener (re)subscribed (every stream once), and as a
// safety net every `stream_recheck_interval`. One timer thread per service sends heartbeats,
// ends streams at `stream_max_age` and starts the safety-net reads, all by the injected Clock.
//
// Who may do what (development authentication, x-rogatory-* metadata):
// - Subscribe, Ack: the caller's own inbox only.
// - Create/List/Delete/RotateSubscription: subscriptions the caller owns.
// - GetDeliveryStatus: parties of the request, or roles auditor, operator,
// service.
// - ListDeadLetters, RedriveDeadLetter: operators for all; others their own
// subscriptions'.
// - PublishEvent: Rogatory services (role service) only; operators included, everyone
//   else gets PERMISSION_DENIED.
//
// Files: the RPCs of inboxes, evidence and dead letters in notification_service.cc, those of
// subscriptions in subscription_rpcs.cc, the Subscribe streams in subscribe_reactor.cc; all
// they keep is in a NotificationStore.
class NotificationService final : public v1::NotificationService::CallbackService {
 public:
  NotificationService(NotificationStore& store, const common::Clock& clock,
                      common::Pipeline& pipeline, common::Sharding sharding,
                      NotificationSettings settings, NotificationMetrics& metrics,
                      NotificationEventHandler& handler);
  // On a RedisNotificationStore of its own over `redis`.
  NotificationService(common::RedisClient& redis, const common::Clock& clock,
                      common::Pipeline& pipeline, common::Sharding sharding,
                      NotificationSettings settings, NotificationMetrics& metrics,
                      NotificationEventHandler& handler);
  // Stops the stream timer and waits for the streams' Redis reads in flight (the
  // server must be shut down first).
  ~NotificationService() override;

  // Stops the stream timer (heartbeats, maximum age, other replicas' inbox reads), which
  // reads the clock and the store: main calls it at drain, before the platform's clock and
  // Redis go. Idempotent; the destructor calls it too.
  void StopStreamTimer();

  grpc::ServerWriteReactor<v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) override;
  grpc::ServerUnaryReactor* Ack(grpc::CallbackServerContext* context, const v1::AckRequest* request,
                                v1::AckResponse* response) override;
  grpc::ServerUnaryReactor* PublishEvent(grpc::CallbackServerContext* context,
                                         const v1::PublishEventRequest* request,
                                         v1::PublishEventResponse* response) override;
  grpc::ServerUnaryReactor* CreateSubscription(grpc::CallbackServerContext* context,
                                               const v1::CreateSubscriptionRequest* request,
                                               v1::CreateSubscriptionResponse* response) override;
  grpc::ServerUnaryReactor* ListSubscriptions(grpc::CallbackServerContext* context,
                                              const v1::ListSubscriptionsRequest* request,
                                              v1::ListSubscriptionsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteSubscription(grpc::CallbackServerContext* context,
                                               const v1::DeleteSubscriptionRequest* request,
                                               v1::DeleteSubscriptionResponse* response) override;
  grpc::ServerUnaryReactor* RotateSubscriptionSecret(
      grpc::CallbackServerContext* context, const v1::RotateSubscriptionSecretRequest* request,
      v1::RotateSubscriptionSecretResponse* response) override;
  grpc::ServerUnaryReactor* GetDeliveryStatus(grpc::CallbackServerContext* context,
                                              const v1::GetDeliveryStatusRequest* request,
                                              v1::GetDeliveryStatusResponse* response) override;
  grpc::ServerUnaryReactor* ListDeadLetters(grpc::CallbackServerContext* context,
                                            const v1::ListDeadLettersRequest* request,
                                            v1::ListDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* RedriveDeadLetter(grpc::CallbackServerContext* context,
                                              const v1::RedriveDeadLetterRequest* request,
                                              v1::RedriveDeadLetterResponse* response) override;

  // The audit log stream deliveries are recorded in (disclosures to the subscriber,
  // issue 8). Null: not recorded. Set before serving.
  void SetAuditor(common::Auditor* auditor) { auditor_ = auditor; }
  // Where the fan-out worker of this process (and the pub/sub listener, for other
  // replicas) says an inbox got a notification: the inbox's streams read at once, and
  // otherwise only every `stream_recheck_interval`. Null: streams poll every
  // `poll_interval` (nothing would wake them). Set before serving.
  void SetInboxWakeups(std::shared_ptr<InboxWakeups> wakeups);
  // The webhook dispatcher to wake when a dead letter is redriven (issue 19). Set before
  // serving; null: its safety net takes the job up.
  void SetWebhookWakeups(std::shared_ptr<FanoutWakeups> wakeups) {
    webhook_wakeups_ = std::move(wakeups);
  }
  // Every open stream reads its inbox once: the pub/sub listener calls it whenever its
  // subscription is (re)confirmed, since appends published while it was down are lost.
  // Never blocks on Redis.
  void WakeAllStreams();

  static constexpr int kMaxAckBatch = 1000;
  static constexpr int kMaxSubscriptionsPerOwner = 100;
  static constexpr int kMaxEventsPerStatus = 500;

 private:
  friend class SubscribeReactor;

  NotificationService(std::unique_ptr<NotificationStore> owned_store, NotificationStore* store,
                      const common::Clock& clock, common::Pipeline& pipeline,
                      common::Sharding sharding, NotificationSettings settings,
                      NotificationMetrics& metrics, NotificationEventHandler& handler);

  // Open streams (bounded by max_subscribers), and what the stream timer serves.
  bool EnterStream();
  void LeaveStream();
  void AddStream(const std::shared_ptr<SubscribeStream>& stream);
  void RemoveStream(const std::shared_ptr<SubscribeStream>& stream);
  // Redis reads of streams in flight, so destruction waits for their callbacks.
  void OpStarted();
  void OpEnded();
  void StreamTimerLoop();
  // How often the stream timer ticks (see StreamTimerLoop).
  absl::Duration TickInterval() const;

  const std::unique_ptr<NotificationStore> owned_store_;  // null unless built on a RedisClient
  NotificationStore& store_;
  const common::Clock& clock_;
  common::Pipeline& pipeline_;
  const common::Sharding sharding_;
  const NotificationSettings settings_;
  NotificationMetrics& metrics_;
  NotificationEventHandler& handler_;
  common::Auditor* auditor_ = nullptr;
  std::shared_ptr<InboxWakeups> inbox_wakeups_;
  std::shared_ptr<FanoutWakeups> webhook_wakeups_;
  // Streams are woken by appends (inbox_wakeups_ is set): they read Redis on a wake-up and
  // at the safety net only. Atomic: the stream timer starts before it is set.
  std::atomic<bool> pushed_{false};

  absl::Mutex mu_;
  int open_streams_ ABSL_GUARDED_BY(mu_) = 0;
  int pending_ops_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The stream timer's interval changed (SetInboxWakeups): it recomputes its next tick.
  bool retick_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<SubscribeStream*, std::shared_ptr<SubscribeStream>> streams_
      ABSL_GUARDED_BY(mu_);
  // Streams woken (with the inbox entry that woke them, empty: unknown), for the stream
  // timer to read.
  std::vector<std::pair<std::shared_ptr<SubscribeStream>, std::string>> woken_ ABSL_GUARDED_BY(mu_);
  std::thread stream_timer_;  // last: started once the rest is built
};

}  // namespace rogatory::notification
