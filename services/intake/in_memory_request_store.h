#pragma once

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "request_store.h"

namespace rogatory::intake {

// A RequestStore in memory, with the same contract as the Redis one; for unit tests.
// Completes synchronously. Thread-safe.
class InMemoryRequestStore final : public RequestStore {
 public:
  void Create(NewRequest request, Done<CreateOutcome> done) override;
  void Get(const std::string& id, Done<v1::Request> done) override;
  void List(const ListQuery& query, Done<ListPage> done) override;

  // The history stored for a request (for tests).
  std::vector<common::v1::Event> History(const std::string& id) const;

 private:
  absl::StatusOr<CreateOutcome> CreateLocked(NewRequest in);

  struct IdempotencyEntry {
    std::string fingerprint;
    std::string request_id;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, v1::Request> requests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<common::v1::Event>> history_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, IdempotencyEntry> idempotency_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::intake
