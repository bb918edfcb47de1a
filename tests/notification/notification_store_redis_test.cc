// The NotificationStore contract on a real redis-server. The Add* write what the fan-out,
// the event handler and the webhook dispatcher write, in the layout of notification_keys.h.
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "evidence.h"
#include "notification_keys.h"
#include "notification_store_contract.h"
#include "redis_notification_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"

namespace rogatory::testing {
namespace {

using notification::Keys;
using notification::NotificationStore;

// One redis-server and client for the store tests of this binary, stopped at exit.
class SharedRedis : public ::testing::Environment {
 public:
  void SetUp() override {
    server_ = std::make_unique<RedisServer>();
    common::AsyncRedisOptions o;
    o.url = *common::ParseRedisUrl(server_->url());
    o.command_timeout = absl::Seconds(5);
    client_ = common::NewAsyncRedisClient(o);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!common::RunRedisCommand(*client_, {"PING"}).ok() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
  }
  static SharedRedis* instance;
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<common::RedisClient> client_;
};
SharedRedis* SharedRedis::instance =
    static_cast<SharedRedis*>(::testing::AddGlobalTestEnvironment(new SharedRedis));

common::RedisClient& Client() { return *SharedRedis::instance->client_; }

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

}  // namespace
}  // namespace rogatory::testing
