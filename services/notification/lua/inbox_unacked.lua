#!lua flags=no-writes
-- The inbox entries an Ack of a cursor records as retrieved: those after the inbox's
-- acknowledgement pointer, up to and including the cursor (redis_inbox_store.cc).
--
-- KEYS[1]  the inbox: a stream of notifications
-- KEYS[2]  the inbox's acknowledgement pointer: the last entry id acknowledged
-- ARGV[1]  the cursor acknowledged
-- ARGV[2]  the most entries to return
-- Returns  {entry id, event id, request id, ...}: three strings per entry, oldest first
local acked = redis.call('GET', KEYS[2]) or '0-0'
local items = redis.call('XRANGE', KEYS[1], '(' .. acked, ARGV[1], 'COUNT', ARGV[2])
local out = {}
for _, e in ipairs(items) do
  local eid, rq = '', ''
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'eid' then eid = f[i + 1] elseif f[i] == 'rq' then rq = f[i + 1] end
  end
  out[#out + 1] = e[1]
  out[#out + 1] = eid
  out[#out + 1] = rq
end
return out
