#pragma once

#include <string>

#include "absl/time/time.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {

// One replica at a time: takes the lease `key` for `replica`, or renews it if `replica`
// holds it, for `ttl`, in one script. True while this replica holds it. For work where two
// holders for a moment are harmless (exporting a shared gauge, idempotent sweeps); work
// that must never overlap takes a fenced lease (the relay's lanes, the audit sealer).
// Blocking: background threads only.
bool HoldReplicaLease(RedisClient& redis, const std::string& key, const std::string& replica,
                      absl::Duration ttl);

}  // namespace rogatory::common
