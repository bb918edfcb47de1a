// The NotificationStore contract on the in-memory store.
#include "in_memory_notification_store.h"
#include "notification_store_contract.h"

namespace rogatory::testing {
namespace {

using notification::InMemoryNotificationStore;
using notification::NotificationStore;

InMemoryNotificationStore& InMemory(NotificationStore& store) {
  return static_cast<InMemoryNotificationStore&>(store);
}

struct InMemoryFactory {
  static std::unique_ptr<NotificationStore> Make() {
    return std::make_unique<InMemoryNotificationStore>();
  }
  static void AddInboxEntry(NotificationStore& store, int shard, const std::string& authority,
                            const NotificationStore::InboxEntry& entry, const std::string& event_id,
                            const std::string& request_id) {
    InMemory(store).AddInboxEntry(shard, authority, entry.id, entry, event_id, request_id);
  }
  static void AddReceivedEvent(NotificationStore& store, int shard, const std::string& request_id,
                               const std::string& event_id, int64_t accept_ms,
                               const std::map<std::string, std::string>& parties,
                               const std::vector<std::string>& recipients) {
    InMemory(store).AddReceivedEvent(shard, request_id, event_id, accept_ms, parties, recipients);
  }
  static void AddDeadLetter(NotificationStore& store, int shard,
                            const NotificationStore::DeadLetterRecord& dead) {
    InMemory(store).AddDeadLetter(shard, dead);
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(InMemory, NotificationStoreContractTest, InMemoryFactory);

}  // namespace
}  // namespace rogatory::testing
