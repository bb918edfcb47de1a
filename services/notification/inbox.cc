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

const char kTrimLua[] = R"lua(
local function trim(key, floorkey, minid, maxlen)
  local last = nil
  local old = redis.call('XREVRANGE', key, '(' .. minid, '-', 'COUNT', 1)
  if #old > 0 then
    last = old[1][1]
    redis.call('XTRIM', key, 'MINID', minid)
  end
  local len = redis.call('XLEN', key)
  if len > maxlen then
    local extra = redis.call('XRANGE', key, '-', '+', 'COUNT', len - maxlen)
    last = extra[#extra][1]
    redis.call('XTRIM', key, 'MAXLEN', maxlen)
  end
  if last then redis.call('SET', floorkey, last) end
end
)lua";

}  // namespace rogatory::notification
