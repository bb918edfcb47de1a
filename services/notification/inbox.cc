#include "inbox.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rogatory::notification {

std::string StreamId::ToString() const { return absl::StrCat(ms, "-", seq); }

std::optional<StreamId> ParseStreamId(absl::string_view text) {
  const size_t dash = text.find('-');
  if (dash == absl::string_view::npos || text.size() > 41) return std::nullopt;
  StreamId id;
  if (!absl::SimpleAtoi(text.substr(0, dash), &id.ms) ||
      !absl::SimpleAtoi(text.substr(dash + 1), &id.seq)) {
    return std::nullopt;
  }
  if (text.substr(0, dash).empty() || text[0] == '+' || text[dash + 1] == '+') return std::nullopt;
  return id;
}

}  // namespace rogatory::notification
