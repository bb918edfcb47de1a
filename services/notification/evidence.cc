#include "evidence.h"

#include "absl/strings/str_cat.h"
#include "notification_keys.h"
#include "notification_lua_scripts.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::notification {

std::string EvidenceField(v1::DeliveryStage stage, absl::string_view recipient,
                          absl::string_view subscription) {
  return absl::StrCat(static_cast<int>(stage), "|", recipient, "|", subscription);
}

void RecordStage(common::RedisClient& redis, int shard, absl::string_view event_id,
                 v1::DeliveryStage stage, absl::string_view recipient,
                 absl::string_view subscription, absl::Time now, absl::Duration retention,
                 std::function<void(absl::StatusOr<bool>)> done) {
  static const common::LuaScript* script =
      new common::LuaScript(std::string(lua::kEvidenceRecordStage));
  redis.Eval(*script, {Keys::Evidence(shard, event_id)},
             {EvidenceField(stage, recipient, subscription), absl::StrCat(absl::ToUnixMillis(now)),
              absl::StrCat(absl::ToInt64Milliseconds(retention))},
             [done = std::move(done)](absl::StatusOr<common::RedisReply> reply) {
               if (!reply.ok()) return done(reply.status());
               auto recorded = common::ReplyInteger(*reply, "evidence stage");
               if (!recorded.ok()) return done(recorded.status());
               done(*recorded == 1);
             });
}

}  // namespace rogatory::notification
