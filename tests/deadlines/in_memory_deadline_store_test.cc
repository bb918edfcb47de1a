// The DeadlineStore contract on the in-memory store.
#include "in_memory_deadline_store.h"

#include "deadline_store_contract.h"

namespace rogatory::testing {
namespace {

struct InMemoryFactory {
  static std::unique_ptr<deadlines::DeadlineStore> Make() {
    return std::make_unique<deadlines::InMemoryDeadlineStore>(common::Sharding(Shards()));
  }
  static std::vector<common::v1::Event> Outbox(deadlines::DeadlineStore& store, int shard) {
    return static_cast<deadlines::InMemoryDeadlineStore&>(store).Outbox(shard);
  }
  static int Shards() { return 4; }
};

INSTANTIATE_TYPED_TEST_SUITE_P(InMemory, DeadlineStoreContractTest, InMemoryFactory);

}  // namespace
}  // namespace rogatory::testing
