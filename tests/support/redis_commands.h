#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rogatory/common/redis.h"

namespace rogatory::testing {

// Calls per command a Redis server has run so far, from INFO commandstats, keyed by command
// name as Redis reports it ("get", "evalsha", "config|resetstat"). Commands run inside
// scripts are counted too.
using CommandCalls = std::map<std::string, int64_t>;

// Parses the text of INFO commandstats ("cmdstat_<name>:calls=<n>,usec=..." lines).
CommandCalls ParseCommandStats(absl::string_view info);

// Counts the commands a Redis server runs between two moments, leaving out the INFO and
// CONFIG commands that counting itself (or a test) sends. (No CONFIG RESETSTAT in between:
// it would restart Redis's counts below the snapshot's.)
//
//   CommandCounter counter(redis);  // snapshot
//   ... the code under test ...
//   EXPECT_LE(counter.Total(), 3);
class CommandCounter {
 public:
  // Takes the first snapshot; the test fails if INFO fails.
  explicit CommandCounter(common::RedisClient& redis);

  // Takes a new snapshot: Delta() and Total() count from now.
  void Snapshot();
  // Calls per command since the last snapshot (commands not run since left out).
  CommandCalls Delta();
  // All commands since the last snapshot: the sum of Delta(). -1 if INFO failed.
  int64_t Total();

 private:
  absl::StatusOr<CommandCalls> Read();
  absl::StatusOr<CommandCalls> DeltaOrError();

  common::RedisClient& redis_;
  CommandCalls snapshot_;
};

}  // namespace rogatory::testing
