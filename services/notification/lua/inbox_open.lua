#!lua flags=allow-oom
-- Trims an inbox by age and length and reports where a Subscribe stream can start
-- (redis_inbox_store.cc). Runs when Redis is full: it only frees memory.
--
-- KEYS[1]  the inbox: a stream of notifications
-- KEYS[2]  the inbox's floor: the id of the newest entry ever trimmed from it
-- ARGV[1]  the oldest entry id to keep, "<ms>-0" (older entries are trimmed)
-- ARGV[2]  the most entries to keep
-- Returns  {floor, the id of the newest entry ever added ('0-0' for none)}
-- #include stream_trim.lua
-- The trim (as inbox_deliver.lua trims before it adds an entry): by age, then by length; the
-- newest entry removed becomes the floor, so a cursor older than it is known to have a gap.
rg_trim_stream(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))

local last = '0-0'
local info = redis.pcall('XINFO', 'STREAM', KEYS[1])
if type(info) == 'table' and not info.err then
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return {redis.call('GET', KEYS[2]) or '0-0', last}
