#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

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

}  // namespace rogatory::notification
