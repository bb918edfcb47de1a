#include "in_memory_request_store.h"
#include "request_store_contract.h"

namespace rogatory::testing {
namespace {

struct InMemoryFactory {
  static std::unique_ptr<intake::RequestStore> Make() {
    return std::make_unique<intake::InMemoryRequestStore>();
  }
  static int Shards() { return 16; }
};

INSTANTIATE_TYPED_TEST_SUITE_P(InMemory, RequestStoreContractTest, InMemoryFactory);

}  // namespace
}  // namespace rogatory::testing
