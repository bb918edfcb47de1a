#include "rogatory/common/replica_lease.h"

#include "absl/strings/str_cat.h"
#include "rogatory/common/lua_scripts.h"

namespace rogatory::common {
namespace {

const LuaScript& LeaseScript() {
  static const LuaScript* script = new LuaScript(std::string(lua::kReplicaLease));
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
