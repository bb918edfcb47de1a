#!lua
-- Records that a recipient retrieved events of requests of one shard, and stops their
-- retrieval timers (redis_evidence_store.cc). An event whose evidence is gone (expired or
-- never received) gets none.
--
-- KEYS[1]    the shard's retrieval timers: a zset of "<event id>|<recipient>" by due ms
-- KEYS[2..]  the events' evidence hashes, one per event
-- ARGV[1]    now, in ms
-- ARGV[2]    the recipient authority
-- ARGV[3]    the evidence retention, in ms
-- ARGV[4..]  the event ids, in the order of KEYS[2..]
-- Returns    how many events were newly recorded as retrieved
local n = 0
for i = 2, #KEYS do
  local eid = ARGV[i + 2]
  if redis.call('EXISTS', KEYS[i]) == 1 and
     redis.call('HSETNX', KEYS[i], '3|' .. ARGV[2] .. '|', ARGV[1]) == 1 then
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
    n = n + 1
  end
  redis.call('ZREM', KEYS[1], eid .. '|' .. ARGV[2])
end
return n
