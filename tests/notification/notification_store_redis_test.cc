// The NotificationStore contract on a real redis-server. The Add* write what the fan-out,
// the event handler and the webhook dispatcher write, in the layout of notification_keys.h.

#include "absl/strings/str_cat.h"
#include "evidence.h"
#include "notification_keys.h"
#include "notification_store_contract.h"
#include "redis_cluster.h"
#include "redis_notification_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"

namespace rogatory::testing {
namespace {

using notification::Keys;
using notification::NotificationStore;

common::RedisClient& Client() { return SharedRedisClient(); }

void Run(std::vector<std::string> command) {
  auto reply = common::RunRedisCommand(Client(), std::move(command));
  ASSERT_TRUE(reply.ok()) << reply.status();
}

struct RedisFactory {
  static std::unique_ptr<NotificationStore> Make() {
    EXPECT_TRUE(common::RunRedisCommand(Client(), {"FLUSHALL"}).ok());
    return std::make_unique<notification::RedisNotificationStore>(Client());
  }
  static void AddInboxEntry(NotificationStore&, int shard, const std::string& authority,
                            const NotificationStore::InboxEntry& entry, const std::string& event_id,
                            const std::string& request_id) {
    Run({"XADD", Keys::Inbox(shard, authority), entry.id.ToString(), "ev", entry.event, "acc",
         absl::StrCat(entry.accept_ms), "kind", entry.reannouncement ? "r" : "n", "rq", request_id,
         "eid", event_id, "to", authority, "tost", entry.recipient_state, "st", entry.states});
  }
  static void AddReceivedEvent(NotificationStore&, int shard, const std::string& request_id,
                               const std::string& event_id, int64_t accept_ms,
                               const std::map<std::string, std::string>& parties,
                               const std::vector<std::string>& recipients) {
    const std::string ms = absl::StrCat(accept_ms);
    Run({"HSET", Keys::Evidence(shard, event_id), "pb", "event bytes", "rq", request_id});
    for (const std::string& r : recipients) {
      Run({"HSET", Keys::Evidence(shard, event_id),
           notification::EvidenceField(notification::v1::DELIVERY_STAGE_ACCEPTED, r), ms});
      Run({"ZADD", Keys::RetrievalDue(shard), ms, absl::StrCat(event_id, "|", r)});
    }
    Run({"ZADD", Keys::RequestEvents(shard, request_id), ms, event_id});
    for (const auto& [field, value] : parties) {
      Run({"HSET", Keys::Parties(shard, request_id), field, value});
    }
  }
  static void AddDeadLetter(NotificationStore&, int shard,
                            const NotificationStore::DeadLetterRecord& d) {
    Run({"ZADD", Keys::DeadLetters(shard), absl::StrCat(d.dead_ms), d.id});
    Run({"HSET", Keys::WebhookJob(shard, d.id), "sub", d.subscription_id, "eid", d.event_id, "rq",
         d.request_id, "to", d.recipient, "tost", d.recipient_state, "att",
         absl::StrCat(d.attempts), "last", d.last_outcome, "dead", absl::StrCat(d.dead_ms)});
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, NotificationStoreContractTest, RedisFactory);
INSTANTIATE_TYPED_TEST_SUITE_P(OneNodeCluster, NotificationStoreContractTest,
                               OnOneNodeCluster<RedisFactory>);
// On a real cluster of three primaries (label cluster: see rogatory_cluster_variant).
INSTANTIATE_TYPED_TEST_SUITE_P(Cluster, NotificationStoreContractTest, OnCluster<RedisFactory>);

}  // namespace
}  // namespace rogatory::testing
