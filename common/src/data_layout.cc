#include "rogatory/common/data_layout.h"

#include <algorithm>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rogatory/common/lua_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/status.h"
#include "script_call.h"

namespace rogatory::common {
namespace {

std::string Describe(const DataLayout& layout) {
  return absl::StrCat("layout version ", layout.version, " with ", layout.shards, " shards");
}

// lua/claim_data_layout.lua
constexpr char kWhat[] = "claim_data_layout";
struct ClaimLayout {
  DataLayout layout;        // what this build writes
  bool record = false;      // record `layout` when Redis holds none (else only read)
  std::string recorded_by;  // the binary's name
  absl::Time now;
};
// The layout recorded after the call, or nothing when Redis holds none and `record` is false.
absl::StatusOr<std::optional<DataLayout>> RunClaim(RedisClient& redis, const ClaimLayout& call) {
  return internal::RunTyped<std::optional<DataLayout>>(
      redis, internal::EmbeddedScript<&lua::kClaimDataLayout>(), {kDataLayoutKey},
      {absl::StrCat(call.layout.version), absl::StrCat(call.layout.shards), call.recorded_by,
       absl::StrCat(absl::ToUnixMillis(call.now)), call.record ? "1" : "0"},
      [](const RedisReply& reply) -> absl::StatusOr<std::optional<DataLayout>> {
        ASSIGN_OR_RETURN(std::vector<std::string> fields, ReplyStrings(reply, kWhat));
        if (fields.empty()) return std::optional<DataLayout>();
        if (fields.size() != 2) {
          return absl::InternalError(absl::StrCat(kWhat, ": expected {version, shards}"));
        }
        ASSIGN_OR_RETURN(int64_t version, ParseDecimal(fields[0], "data layout version"));
        ASSIGN_OR_RETURN(int64_t shards, ParseDecimal(fields[1], "data layout shards"));
        return std::optional<DataLayout>(
            DataLayout{static_cast<int>(version), static_cast<int>(shards)});
      });
}

// The shard of a request data key "rg:{sN}:...", or -1 for another key.
int ShardOfKey(absl::string_view key) {
  constexpr absl::string_view kPrefix = "rg:{s";
  if (!absl::StartsWith(key, kPrefix)) return -1;
  key.remove_prefix(kPrefix.size());
  const size_t close = key.find("}:");
  int shard = -1;
  if (close == absl::string_view::npos || !absl::SimpleAtoi(key.substr(0, close), &shard)) {
    return -1;
  }
  return shard;
}

// Walks the keyspace for request data keys: all of them (highest shard), or until the first.
absl::StatusOr<std::optional<int>> ScanShards(RedisClient& redis, bool stop_at_first) {
  std::optional<int> highest;
  std::string cursor = "0";
  do {
    auto reply =
        RunRedisCommand(redis, {"SCAN", cursor, "MATCH", "rg:{s[0-9]*}:*", "COUNT", "1000"});
    if (!reply.ok()) return reply.status();
    auto parts = ReplyArray(*reply, "SCAN");
    if (!parts.ok()) return parts.status();
    if ((*parts)->size() != 2) return absl::InternalError("SCAN: expected {cursor, keys}");
    auto next = ReplyString((**parts)[0], "SCAN cursor");
    if (!next.ok()) return next.status();
    auto keys = ReplyStrings((**parts)[1], "SCAN keys");
    if (!keys.ok()) return keys.status();
    for (const std::string& key : *keys) {
      const int shard = ShardOfKey(key);
      if (shard < 0) continue;
      highest = std::max(highest.value_or(shard), shard);
      if (stop_at_first) return highest;
    }
    cursor = *std::move(next);
  } while (cursor != "0");
  return highest;
}

}  // namespace

absl::StatusOr<std::optional<DataLayout>> ReadDataLayout(RedisClient& redis) {
  return RunClaim(redis, {DataLayout{}, /*record=*/false, "", absl::UnixEpoch()});
}

absl::Status WriteDataLayout(RedisClient& redis, const DataLayout& layout,
                             absl::string_view recorded_by, absl::Time now) {
  auto written = RunRedisCommand(
      redis, {"HSET", kDataLayoutKey, "version", absl::StrCat(layout.version), "shards",
              absl::StrCat(layout.shards), "recorded_by", std::string(recorded_by),
              "recorded_at_ms", absl::StrCat(absl::ToUnixMillis(now))});
  return written.status();
}

absl::StatusOr<std::optional<int>> HighestShardInUse(RedisClient& redis) {
  return ScanShards(redis, /*stop_at_first=*/false);
}

absl::Status ClaimDataLayout(RedisClient& redis, const DataLayout& expected,
                             absl::string_view recorded_by, absl::Time now) {
  auto recorded = ReadDataLayout(redis);
  if (!recorded.ok()) return recorded.status();
  if (!recorded->has_value()) {
    auto data = ScanShards(redis, /*stop_at_first=*/true);
    if (!data.ok()) return data.status();
    if (data->has_value()) {
      // Another service may have recorded the layout and written data between the read above
      // and the scan: a layout-aware writer records before it writes, and the record is never
      // removed, so data with no record on a second read was written before layouts were.
      recorded = ReadDataLayout(redis);
      if (!recorded.ok()) return recorded.status();
    }
    if (data->has_value() && !recorded->has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Redis holds request data but no data layout record (it was written before "
          "layouts were recorded): run `rogatory-migrate apply --redis-shards=N` with the "
          "shard count it was written with; this build writes ",
          Describe(expected)));
    }
    if (!recorded->has_value()) {
      recorded = RunClaim(redis, {expected, /*record=*/true, std::string(recorded_by), now});
      if (!recorded.ok()) return recorded.status();
      if (!recorded->has_value()) return absl::InternalError("the data layout was not recorded");
    }
  }
  const DataLayout& found = **recorded;
  if (found == expected) return absl::OkStatus();
  if (found.version != expected.version) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Redis holds data of ", Describe(found), "; this build writes ", Describe(expected),
        found.version < expected.version
            ? ": run `rogatory-migrate apply` (the chart runs it before an upgrade)"
            : ": this build is older than the data; run the release that wrote it"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "Redis holds data spread over ", found.shards, " shards but redis-shards is ",
      expected.shards,
      ": a changed shard count would orphan every request; set redis-shards=", found.shards));
}

}  // namespace rogatory::common
