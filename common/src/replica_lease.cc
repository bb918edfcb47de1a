#include "rogatory/common/replica_lease.h"

#include "absl/strings/str_cat.h"
#include "rogatory/common/lua_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/status.h"
#include "script_call.h"

namespace rogatory::common {
namespace {

// lua/replica_lease.lua
constexpr char kWhat[] = "replica_lease";
struct TakeOrRenewLease {
  std::string lease_key;
  std::string replica;
  absl::Duration ttl;
};
// Whether `replica` holds the lease after the call.
absl::StatusOr<bool> TakeOrRenew(RedisClient& redis, const TakeOrRenewLease& call) {
  return internal::RunTyped<bool>(redis, internal::EmbeddedScript<&lua::kReplicaLease>(),
                                  {call.lease_key},
                                  {call.replica, absl::StrCat(absl::ToInt64Milliseconds(call.ttl))},
                                  [](const RedisReply& reply) -> absl::StatusOr<bool> {
                                    ASSIGN_OR_RETURN(int64_t held, ReplyInteger(reply, kWhat));
                                    return held == 1;
                                  });
}

}  // namespace

bool HoldReplicaLease(RedisClient& redis, const std::string& key, const std::string& replica,
                      absl::Duration ttl) {
  absl::StatusOr<bool> held = TakeOrRenew(redis, {key, replica, ttl});
  return held.ok() && *held;
}

}  // namespace rogatory::common
