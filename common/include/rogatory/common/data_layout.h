#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {

// What Redis holds, recorded at first start (issue 17, item 9): the layout version of the
// keys and the shard count they are spread over. A service configured with another shard
// count, or built for another layout, refuses to start rather than orphan data; a layout
// change ships a migration (rogatory-migrate, tools/migrate) that moves the record on.
//
// Version 1 is the layout of README's "Redis key layout". Data written before layouts were
// recorded has no record; rogatory-migrate records it, with the shard count the operator
// names, after checking the data fits it.
// Version 2 adds intake's worklist rows (wl:a:<authority>, wl:s:<state>; issue 20).
// Version 3 adds intake's per-shard request counts (rg:{sN}:counts; issue 19).
// Version 4 keeps intake's per-authority document usage per shard (rg:{sN}:docbytes:authority
// instead of rg:docbytes:authority; issue 18), so every script stays in one cluster slot.
inline constexpr int kDataLayoutVersion = 4;
// The record, a hash. Its own hash tag: it belongs to no request shard.
inline constexpr char kDataLayoutKey[] = "rg:{meta}:layout";

struct DataLayout {
  int version = kDataLayoutVersion;
  int shards = 16;
  bool operator==(const DataLayout&) const = default;
};

// The recorded layout, or nothing when Redis holds no record. UNAVAILABLE when Redis does
// not answer.
absl::StatusOr<std::optional<DataLayout>> ReadDataLayout(RedisClient& redis);

// Records `layout` unconditionally (migrations, once they have moved the data).
absl::Status WriteDataLayout(RedisClient& redis, const DataLayout& layout,
                             absl::string_view recorded_by, absl::Time now);

// What a service does at start: OK when Redis holds `expected`, or holds no record and no
// request data, in which case `expected` is recorded (a new installation). Otherwise
// FAILED_PRECONDITION with a message naming both layouts and what to run: another shard
// count or version, or request data without a record (written before layouts were
// recorded). UNAVAILABLE when Redis does not answer. Blocking: start-up only.
absl::Status ClaimDataLayout(RedisClient& redis, const DataLayout& expected,
                             absl::string_view recorded_by, absl::Time now);

// The highest shard number of any request data key ("rg:{sN}:..."), or nothing when there
// is none. Walks the keyspace with SCAN: start-up and migrations only.
absl::StatusOr<std::optional<int>> HighestShardInUse(RedisClient& redis);

}  // namespace rogatory::common
