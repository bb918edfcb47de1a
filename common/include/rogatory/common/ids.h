#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace rogatory::common {

// A ULID: 48 bits of milliseconds since the epoch and 80 random bits, 26 characters of
// Crockford base32 in lower case. Ids sort by creation time and carry no personal data.
std::string NewUlid(absl::Time now);

// A 32-hex-digit W3C trace id.
std::string NewTraceId();

// Hex digests.
std::string Sha1Hex(absl::string_view data);
std::string Sha256Hex(absl::string_view data);

// Redis keys are grouped into a fixed number of shards, each a Redis Cluster hash tag, so
// that everything one atomic step touches lives in one slot.
class Sharding {
 public:
  explicit Sharding(int shard_count) : shard_count_(shard_count) {}
  int shard_count() const { return shard_count_; }

  // The shard a stable key (such as caller + idempotency key) maps to.
  int ShardFor(absl::string_view stable_key) const;
  // "rg:{s7}:" for shard 7.
  static std::string Prefix(int shard);
  // A resource id that names its shard: "<kind>-<shard>-<ulid>".
  static std::string MakeId(absl::string_view kind, int shard, absl::Time now);
  // The shard named by an id made by MakeId; INVALID_ARGUMENT if the id is malformed or
  // names a shard outside [0, shard_count).
  absl::StatusOr<int> ShardOf(absl::string_view kind, absl::string_view id) const;

 private:
  int shard_count_;
};

}  // namespace rogatory::common
