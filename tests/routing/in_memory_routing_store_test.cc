// The RoutingStore contract on the in-memory fake.
#include "in_memory_routing_store.h"

#include "routing_store_contract.h"

namespace rogatory::testing {
namespace {

struct InMemoryFactory {
  static std::unique_ptr<routing::RoutingStore> Make() {
    return std::make_unique<routing::InMemoryRoutingStore>(common::Sharding(Shards()));
  }
  static int Shards() { return 16; }
};

INSTANTIATE_TYPED_TEST_SUITE_P(InMemory, RoutingStoreContractTest, InMemoryFactory);

}  // namespace
}  // namespace rogatory::testing
