#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/jwt.h"

namespace rogatory::common {

struct ServiceTokenOptions {
  std::string service;  // "intake": the subject is rogatory-<service>
  std::string issuer = "rogatory-dev";
  std::string audience = "rogatory";
  absl::Duration ttl = absl::Minutes(5);
};

// The token a service presents when it calls another service (the outbox relay): sub
// rogatory-<service>, roles ["service"], a short expiry, minted with the service's own key
// (kid in the header) and re-minted once less than a third of its life is left.
// Thread-safe.
class ServiceTokenSource {
 public:
  ServiceTokenSource(const Clock& clock, std::shared_ptr<const SigningKey> key,
                     ServiceTokenOptions options);

  // The current token, minting a new one when needed.
  absl::StatusOr<std::string> Token();
  // Replaces the signing key (reload); the next Token() mints with it.
  void SetKey(std::shared_ptr<const SigningKey> key);

 private:
  const Clock& clock_;
  const ServiceTokenOptions options_;
  absl::Mutex mu_;
  std::shared_ptr<const SigningKey> key_ ABSL_GUARDED_BY(mu_);
  std::string token_ ABSL_GUARDED_BY(mu_);
  absl::Time renew_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace rogatory::common
