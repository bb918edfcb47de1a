#!lua flags=no-writes
-- Reads fields of deadlines of one shard in one round trip (deadline_store.cc): the
-- deadlines of an index page or of a claimed batch of timers (pb, ver), the authorities the
-- deadlines of an erased request are indexed under (authority).
--
-- KEYS[1..]  the deadline hashes (dl:d:<id>)
-- ARGV[1..]  the hash fields to read of each
-- Returns  for each key in KEYS order, the value of each field in ARGV order ('' for a
--          missing field or deadline), all in one flat array
local out = {}
for i = 1, #KEYS do
  local r = redis.call('HMGET', KEYS[i], unpack(ARGV))
  for j = 1, #ARGV do out[#out + 1] = r[j] or '' end
end
return out
