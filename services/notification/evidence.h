#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/redis.h"
#include "rogatory/notification/v1/notification.pb.h"

namespace rogatory::notification {

// Delivery evidence lives in the hash Keys::Evidence(request shard, event id),
// one field per (stage, recipient, subscription): "<stage number>|<authority
// id>|<subscription id or ''>"
// -> milliseconds since the epoch. Fields are written with HSETNX: the first
// time a stage is reached is the evidence, and repeating a write is harmless.
std::string EvidenceField(v1::DeliveryStage stage, absl::string_view recipient,
                          absl::string_view subscription = "");

// Records a stage (only if the event's evidence exists: it was received).
// `done` gets whether the stage was newly recorded. Asynchronous; `done` runs
// on a Redis callback.
void RecordStage(common::RedisClient& redis, int shard, absl::string_view event_id,
                 v1::DeliveryStage stage, absl::string_view recipient,
                 absl::string_view subscription, absl::Time now, absl::Duration retention,
                 std::function<void(absl::StatusOr<bool>)> done);

}  // namespace rogatory::notification
