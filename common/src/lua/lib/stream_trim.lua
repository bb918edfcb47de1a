-- Trims a stream by age, then by length, and records the id of the newest entry it removed
-- in `floor` (a string key), so that a reader whose cursor is older than the floor knows it
-- missed entries. Shared by notification's inbox_deliver.lua and inbox_open.lua. `stream`
-- and `floor` are keys: the script passes them from its KEYS (tools/lint/lua_scripts.py
-- checks the helper and every call). `min_id` is the oldest entry id to keep, "<ms>-0";
-- `maxlen` the most entries to keep (a number). A script includes it with the line
--   -- #include stream_trim.lua
local function rg_stream_id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local function rg_trim_stream(stream, floor, min_id, maxlen)
  local trimmed = nil
  -- Only when the oldest entry is older than the minimum: an XREVRANGE from below every
  -- entry walks the whole stream (Redis 7.0), which made each delivery cost O(stream length).
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #first > 0 and rg_stream_id_less(first[1][1], min_id) then
    local old = redis.call('XREVRANGE', stream, '(' .. min_id, '-', 'COUNT', 1)
    trimmed = old[1][1]
    redis.call('XTRIM', stream, 'MINID', min_id)
  end
  local len = redis.call('XLEN', stream)
  if len > maxlen then
    local extra = redis.call('XRANGE', stream, '-', '+', 'COUNT', len - maxlen)
    trimmed = extra[#extra][1]
    redis.call('XTRIM', stream, 'MAXLEN', maxlen)
  end
  if trimmed then redis.call('SET', floor, trimmed) end
end
