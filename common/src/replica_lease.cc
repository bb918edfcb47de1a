#include "rogatory/common/replica_lease.h"

#include "absl/strings/str_cat.h"

namespace rogatory::common {
namespace {

// KEYS: lease. ARGV: replica, ttl ms. Returns 1 when the replica holds the lease.
const LuaScript& LeaseScript() {
  static const LuaScript* script = new LuaScript(absl::StrCat(kScriptRunsWhenFull, R"lua(
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
)lua"));
  return *script;
}

}  // namespace

bool HoldReplicaLease(RedisClient& redis, const std::string& key, const std::string& replica,
                      absl::Duration ttl) {
  auto held = RunRedisScript(redis, LeaseScript(), {key},
                             {replica, absl::StrCat(absl::ToInt64Milliseconds(ttl))});
  return held.ok() && held->integer == 1;
}

}  // namespace rogatory::common
