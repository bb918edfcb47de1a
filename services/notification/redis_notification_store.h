#pragma once

#include "notification_store.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/redis.h"

namespace rogatory::notification {

// NotificationStore on Redis, keys as notification_keys.h lays them out; each call is one
// script (one round trip) unless its comment says otherwise. The scripts are lua/*.lua,
// embedded at build time; each receives every key it touches in KEYS, so where one would
// need keys named by data it reads, the call reads that data first. Its code is split by area:
// redis_event_store.cc (received events), redis_fanout_store.cc (fan-out, timers),
// redis_inbox_store.cc (inboxes, acknowledgement), redis_evidence_store.cc (delivery evidence),
// redis_subscription_store.cc (subscriptions, dead letters).
class RedisNotificationStore final : public NotificationStore {
 public:
  explicit RedisNotificationStore(common::RedisClient& redis)
      : redis_(redis), publisher_id_(common::NewTraceId().substr(0, 16)) {}

  // The id this store's fan-out announcements carry (Keys::FanoutAppendedChannel): a listener
  // in the same process ignores them (the handler woke its fan-out directly).
  const std::string& publisher_id() const { return publisher_id_; }

  void ReceiveEvent(const ReceivedEvent& event, Done<ReceiveResult> done) override;
  void EraseRequest(int shard, const std::string& request_id, const common::Dedupe& dedupe,
                    Done<int> done) override;

  void PrepareFanout(int shard, Done<bool> done) override;
  void ReadFanout(const FanoutRead& read, Done<FanoutBatch> done) override;
  void AckFanout(int shard, const std::vector<std::string>& ids, Done<int> done) override;
  void RunRetrievalTimers(const TimerRun& run, Done<TimerOutcome> done) override;
  void CountBacklog(int shard, Done<Backlog> done) override;

  void OpenInbox(int shard, const std::string& authority, const std::string& min_id,
                 int64_t max_length, Done<InboxBounds> done) override;
  void ReadInbox(int shard, const std::string& authority, const StreamId& after, size_t count,
                 Done<InboxPage> done) override;
  void ReadUnacked(int shard, const std::string& authority, const std::string& cursor, int max,
                   Done<std::vector<Unacked>> done) override;
  void AdvanceAcked(int shard, const std::string& authority, const std::string& cursor,
                    Done<bool> done) override;
  void DeliverToInbox(const InboxDelivery& delivery, Done<DeliveryResult> done) override;

  void RecordRetrieved(int shard, const std::string& recipient,
                       const std::vector<std::string>& event_ids, absl::Time now,
                       absl::Duration retention, Done<int> done) override;
  void RecordStage(int shard, const std::string& event_id, v1::DeliveryStage stage,
                   const std::string& recipient, const std::string& subscription, absl::Time now,
                   absl::Duration retention, Done<bool> done) override;
  void ReadRequestEvidence(int shard, const std::string& request_id, int max_events,
                           Done<std::optional<RequestEvidence>> done) override;
  void ReadEventEvidence(int shard, const std::string& event_id,
                         Done<std::optional<RequestEvidence>> done) override;

  void CreateSubscription(const NewSubscription& request, Done<CreateResult> done) override;
  void ListSubscriptions(int shard, const std::string& owner,
                         Done<std::vector<StoredSubscription>> done) override;
  void DeleteSubscription(int shard, const std::string& owner, const std::string& id,
                          Done<DeleteOutcome> done) override;
  void RotateSecret(const RotateRequest& request,
                    Done<std::optional<StoredSubscription>> done) override;

  void ListDeadLetters(int shard, int64_t offset, int count, const std::string& owner,
                       Done<DeadLetterPage> done) override;
  void RedriveDeadLetter(int shard, const std::string& id, int64_t now_ms, const std::string& owner,
                         Done<bool> done) override;

 private:
  // The receive (erase) script, with the catch-up items (event ids) as last read.
  void RunReceive(const ReceivedEvent& event, std::vector<std::string> catch_up, int attempts_left,
                  Done<ReceiveResult> done);
  void RunErase(int shard, const std::string& request_id, const common::Dedupe& dedupe,
                std::vector<std::string> event_ids, int attempts_left, Done<int> done);
  // The create script, with the subscription the idempotency record named when read.
  void RunCreate(const NewSubscription& request, const std::string& existing_id, int attempts_left,
                 Done<CreateResult> done);

  common::RedisClient& redis_;
  const std::string publisher_id_;
};

}  // namespace rogatory::notification
