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
local function idlt(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local function trim(key, floorkey, minid, maxlen)
  local last = nil
  -- Only when the oldest entry is older than minid: an XREVRANGE from below every entry
  -- walks the whole stream (Redis 7.0), which made each delivery cost O(inbox length).
  local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
  if #first > 0 and idlt(first[1][1], minid) then
    local old = redis.call('XREVRANGE', key, '(' .. minid, '-', 'COUNT', 1)
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
