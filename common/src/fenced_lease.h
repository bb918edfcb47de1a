#pragma once

// The fenced lease common's background workers share (issue 17, item 5): a hash
// {owner, token} with a TTL and a fencing counter; every step the holder takes checks its
// token in the same script, so a replica that lost the lease acts on nothing. Relay lanes
// take it with TakeFencedLease; the audit sealer takes it inside its lease-and-read script
// (one round trip with its read) and both release it with ReleaseFencedLease. Internal to
// common (scripts lua/fenced_lease_{take,release}.lua).

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rogatory/common/redis.h"

namespace rogatory::common::internal {

struct FencedLeaseTake {
  std::string lease_key;
  std::string fence_key;
  std::string owner;  // the replica
  absl::Duration ttl;
  int64_t held_token = 0;  // the token the replica holds; 0: none
};
// The token held after the call; 0 when another replica holds the lease. Waits for Redis:
// for background threads only.
absl::StatusOr<int64_t> TakeFencedLease(RedisClient& redis, const FencedLeaseTake& call);

struct FencedLeaseRelease {
  std::string lease_key;
  std::string owner;
  int64_t token = 0;
};
// Deletes the lease if `owner` still holds it under `token`. Waits for Redis.
absl::Status ReleaseFencedLease(RedisClient& redis, const FencedLeaseRelease& call);

}  // namespace rogatory::common::internal
