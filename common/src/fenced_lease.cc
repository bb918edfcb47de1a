#include "fenced_lease.h"

#include "absl/strings/str_cat.h"
#include "rogatory/common/lua_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "script_call.h"

namespace rogatory::common::internal {

absl::StatusOr<int64_t> TakeFencedLease(RedisClient& redis, const FencedLeaseTake& call) {
  return RunTyped<int64_t>(
      redis, EmbeddedScript<&lua::kFencedLeaseTake>(), {call.lease_key, call.fence_key},
      {call.owner, absl::StrCat(absl::ToInt64Milliseconds(call.ttl)),
       call.held_token == 0 ? "" : absl::StrCat(call.held_token)},
      [](const RedisReply& reply) { return ReplyInteger(reply, "fenced lease take"); });
}

absl::Status ReleaseFencedLease(RedisClient& redis, const FencedLeaseRelease& call) {
  return RunTyped<int64_t>(
             redis, EmbeddedScript<&lua::kFencedLeaseRelease>(), {call.lease_key},
             {call.owner, absl::StrCat(call.token)},
             [](const RedisReply& reply) { return ReplyInteger(reply, "fenced lease release"); })
      .status();
}

}  // namespace rogatory::common::internal
