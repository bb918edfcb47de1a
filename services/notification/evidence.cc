#include "evidence.h"

#include "absl/strings/str_cat.h"
#include "notification_keys.h"

namespace rogatory::notification {

std::string EvidenceField(v1::DeliveryStage stage, absl::string_view recipient,
                          absl::string_view subscription) {
  return absl::StrCat(static_cast<int>(stage), "|", recipient, "|", subscription);
}

void RecordStage(common::RedisClient& redis, int shard, absl::string_view event_id,
                 v1::DeliveryStage stage, absl::string_view recipient,
                 absl::string_view subscription, absl::Time now, absl::Duration retention,
                 std::function<void(absl::StatusOr<bool>)> done) {
  // KEYS: evidence hash. ARGV: field, now ms, retention ms.
  static const common::LuaScript* script = new common::LuaScript(R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return n
)lua");
  redis.Eval(*script, {Keys::Evidence(shard, event_id)},
             {EvidenceField(stage, recipient, subscription), absl::StrCat(absl::ToUnixMillis(now)),
              absl::StrCat(absl::ToInt64Milliseconds(retention))},
             [done = std::move(done)](absl::StatusOr<common::RedisReply> reply) {
               if (!reply.ok()) return done(reply.status());
               done(reply->integer == 1);
             });
}

}  // namespace rogatory::notification
