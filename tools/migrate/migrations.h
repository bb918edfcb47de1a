#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rogatory/common/data_layout.h"
#include "rogatory/common/redis.h"

namespace rogatory::migrate {

// One step of the data layout: moves data written by layout `from` to `from + 1`, in place,
// idempotently (a step cut short and run again finishes the job). The record is moved on
// by Apply once the step has returned OK, never by the step itself.
struct Migration {
  int from = 0;
  std::string what;  // one line for the operator
  std::function<absl::Status(common::RedisClient& redis, int shards)> run;
};

// Every migration, in order. Version 0 is data written before layouts were recorded.
const std::vector<Migration>& Migrations();

struct MigrationReport {
  std::optional<common::DataLayout> before;  // nothing: no record
  common::DataLayout after;
  std::vector<std::string> steps;  // what ran, in order
};

// Brings Redis to common::kDataLayoutVersion with `shards` shards. Without a record it
// checks that the data fits `shards` (no key of a higher shard) before recording. Refuses
// (FAILED_PRECONDITION, naming both) a shard count other than the recorded one, and data
// newer than this build. With dry_run, reports what it would do and changes nothing.
absl::StatusOr<MigrationReport> Apply(common::RedisClient& redis, int shards, bool dry_run,
                                      absl::Time now);

}  // namespace rogatory::migrate
