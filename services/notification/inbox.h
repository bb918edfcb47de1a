#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "rogatory/common/redis.h"

namespace rogatory::notification {

// An inbox cursor is the id of a Redis stream entry, "<ms>-<seq>".
struct StreamId {
  uint64_t ms = 0;
  uint64_t seq = 0;
  bool operator<(const StreamId& o) const { return ms < o.ms || (ms == o.ms && seq < o.seq); }
  bool operator<=(const StreamId& o) const { return !(o < *this); }
  std::string ToString() const;
};
std::optional<StreamId> ParseStreamId(absl::string_view text);

// Lua helper (a string to prepend to scripts): trim(stream, floor_key, min_id,
// max_len) trims by age (entries before min_id "<ms>-0") and length, and
// records in floor_key the id of the newest entry removed, so a cursor older
// than it is known to have a gap.
extern const char kTrimLua[];

}  // namespace rogatory::notification
