#!lua flags=allow-oom
-- Trims an inbox by age and length and reports where a Subscribe stream can start
-- (redis_inbox_store.cc). Runs when Redis is full: it only frees memory.
--
-- KEYS[1]  the inbox: a stream of notifications
-- KEYS[2]  the inbox's floor: the id of the newest entry ever trimmed from it
-- ARGV[1]  the oldest entry id to keep, "<ms>-0" (older entries are trimmed)
-- ARGV[2]  the most entries to keep
-- Returns  {floor, the id of the newest entry ever added ('0-0' for none)}
local function idlt(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
-- The trim (as inbox_deliver.lua trims before it adds an entry): by age, then by length; the newest entry removed
-- becomes the floor, so a cursor older than it is known to have a gap.
local maxlen = tonumber(ARGV[2])
local trimmed = nil
-- Only when the oldest entry is older than the minimum: an XREVRANGE from below every entry
-- walks the whole stream (Redis 7.0), which made each delivery cost O(inbox length).
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #first > 0 and idlt(first[1][1], ARGV[1]) then
  local old = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[1], '-', 'COUNT', 1)
  trimmed = old[1][1]
  redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
end
local len = redis.call('XLEN', KEYS[1])
if len > maxlen then
  local extra = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - maxlen)
  trimmed = extra[#extra][1]
  redis.call('XTRIM', KEYS[1], 'MAXLEN', maxlen)
end
if trimmed then redis.call('SET', KEYS[2], trimmed) end

local last = '0-0'
local info = redis.pcall('XINFO', 'STREAM', KEYS[1])
if type(info) == 'table' and not info.err then
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return {redis.call('GET', KEYS[2]) or '0-0', last}
