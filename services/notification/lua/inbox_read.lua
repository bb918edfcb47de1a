#!lua flags=no-writes
-- Reads an inbox after a position, with its floor in the same atomic step, so a trim
-- between the two cannot hide a gap (redis_inbox_store.cc).
--
-- KEYS[1]  the inbox: a stream of notifications
-- KEYS[2]  the inbox's floor: the id of the newest entry ever trimmed from it
-- ARGV[1]  the position: the id of the last entry the reader has
-- ARGV[2]  the most entries to read
-- Returns  {floor ('0-0' for none), then each entry as XRANGE gives it: {id, {field, value...}}}
local out = {redis.call('GET', KEYS[2]) or '0-0'}
local items = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
for _, e in ipairs(items) do out[#out + 1] = e end
return out
