#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "notification_store.h"

namespace rogatory::notification {

// NotificationStore in memory: a real, tested fake for unit tests (the contract suite in
// tests/support/notification_store_contract.h runs against it and the Redis store). `done`
// runs on the caller's thread before the call returns. Records never expire (no TTLs) and
// shards only partition what the Redis store partitions. AddInboxEntry, AddReceivedEvent and
// AddDeadLetter put what the fan-out, the event handler and the webhook dispatcher would
// write. Thread-safe.
class InMemoryNotificationStore final : public NotificationStore {
 public:
  // What the fan-out writes into an inbox (id "<ms>-<seq>", increasing).
  void AddInboxEntry(int shard, const std::string& authority, const StreamId& id,
                     const InboxEntry& entry, const std::string& event_id,
                     const std::string& request_id);
  // What the event handler writes when it receives an event: its evidence ("accepted" for
  // each recipient), the request's event index and party record fields (iss, exe, cen,
  // tra, ntf).
  void AddReceivedEvent(int shard, const std::string& request_id, const std::string& event_id,
                        int64_t accept_ms, const std::map<std::string, std::string>& parties,
                        const std::vector<std::string>& recipients);
  // A webhook job that used up its attempts.
  void AddDeadLetter(int shard, const DeadLetterRecord& dead);

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
  struct Inbox {
    std::map<std::pair<uint64_t, uint64_t>, std::pair<InboxEntry, Unacked>> entries;
    StreamId floor, last, acked;
  };
  struct Evidence {
    std::string request_id;
    std::optional<std::string> payload;     // the event ("pb"), until its request is erased
    std::map<std::string, int64_t> fields;  // "<stage>|<recipient>|<subscription>" -> ms
  };
  struct Subscription {
    std::string owner;
    StoredSubscription stored;
  };
  using Key = std::pair<int, std::string>;  // (shard, name)

  std::optional<RequestEvidence> EvidenceOf(int shard, const std::string& request_id,
                                            const std::vector<std::string>& event_ids)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::map<Key, Inbox> inboxes_ ABSL_GUARDED_BY(mu_);
  std::map<Key, Evidence> evidence_ ABSL_GUARDED_BY(mu_);  // by event id
  // A request's events by accept ms, then id (as the Redis zset orders them).
  std::map<Key, std::set<std::pair<int64_t, std::string>>> request_events_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::map<std::string, std::string>> parties_ ABSL_GUARDED_BY(mu_);
  // Retrieval timers "<event id>|<recipient>" -> due ms, by shard.
  std::map<int, std::map<std::string, int64_t>> retrieval_due_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> seen_ ABSL_GUARDED_BY(mu_);  // duplicate markers
  // A shard's fan-out outbox: entries "0-<n>" as field -> value (ev, to, acc, kind, st,
  // inst, typ, about), and its consumer group.
  struct Outbox {
    bool group = false;
    uint64_t next = 1;       // the next entry's number
    uint64_t delivered = 0;  // the newest entry number the group handed out
    std::map<uint64_t, std::map<std::string, std::string>> entries;
    std::map<uint64_t, std::string> pending;  // entry number -> consumer
  };
  void AppendFanout(int shard, std::map<std::string, std::string> fields)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::map<int, Outbox> fanout_ ABSL_GUARDED_BY(mu_);
  // A request's catch-up list: "<deadline id>|<event id>|<type>", oldest first.
  std::map<Key, std::vector<std::string>> catch_up_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::set<std::string>> owner_subscriptions_ ABSL_GUARDED_BY(mu_);
  std::map<Key, Subscription> subscriptions_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::pair<std::string, std::string>> idempotency_ ABSL_GUARDED_BY(mu_);
  // Dead letters by (dead ms, id), and their records by id.
  std::map<int, std::set<std::pair<int64_t, std::string>>> dead_order_ ABSL_GUARDED_BY(mu_);
  std::map<Key, DeadLetterRecord> dead_ ABSL_GUARDED_BY(mu_);
  std::map<Key, int64_t> webhook_due_ ABSL_GUARDED_BY(mu_);
  // Webhook jobs ("<subscription>/<notification id>") ever enqueued, and the inboxes' markers
  // ("<authority>:<notification id>").
  std::set<Key> webhook_jobs_ ABSL_GUARDED_BY(mu_);
  std::set<Key> inbox_markers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::notification
