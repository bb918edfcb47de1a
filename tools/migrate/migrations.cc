#include "migrations.h"

#include "absl/strings/str_cat.h"

namespace rogatory::migrate {
namespace {

// 0 -> 1: data written before layouts were recorded has layout 1's keys; recording it is
// the whole step, once Apply has checked the data fits the shard count.
absl::Status RecordUnversionedData(common::RedisClient&, int) { return absl::OkStatus(); }

}  // namespace

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration>* migrations = new std::vector<Migration>{
      {0, "record the layout of data written before layouts were recorded", RecordUnversionedData},
  };
  return *migrations;
}

absl::StatusOr<MigrationReport> Apply(common::RedisClient& redis, int shards, bool dry_run,
                                      absl::Time now) {
  MigrationReport report;
  auto recorded = common::ReadDataLayout(redis);
  if (!recorded.ok()) return recorded.status();
  report.before = *recorded;
  int version = 0;
  if (recorded->has_value()) {
    const common::DataLayout& found = **recorded;
    if (found.version > common::kDataLayoutVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Redis holds data of layout version ", found.version, ", newer than this build's ",
          common::kDataLayoutVersion, ": run the release that wrote it"));
    }
    if (found.shards != shards) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Redis holds data spread over ", found.shards, " shards but --redis-shards is ", shards,
          ": moving data between shard counts is not supported; keep redis-shards=", found.shards));
    }
    version = found.version;
  } else {
    auto highest = common::HighestShardInUse(redis);
    if (!highest.ok()) return highest.status();
    if (highest->has_value() && **highest >= shards) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Redis holds request data in shard ", **highest, ", so it was written with more than ",
          shards, " shards: name the shard count it was written with (--redis-shards)"));
    }
  }
  for (const Migration& m : Migrations()) {
    if (m.from < version) continue;
    if (m.from != version) break;
    report.steps.push_back(absl::StrCat(m.from, " -> ", m.from + 1, ": ", m.what));
    if (!dry_run) {
      if (absl::Status s = m.run(redis, shards); !s.ok()) return s;
      if (absl::Status s =
              common::WriteDataLayout(redis, {m.from + 1, shards}, "rogatory-migrate", now);
          !s.ok()) {
        return s;
      }
    }
    version = m.from + 1;
  }
  if (version != common::kDataLayoutVersion) {
    return absl::InternalError(absl::StrCat("no migration leads from layout version ", version,
                                            " to ", common::kDataLayoutVersion));
  }
  report.after = {version, shards};
  return report;
}

}  // namespace rogatory::migrate
