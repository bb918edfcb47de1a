#!lua
-- Records the data layout this build writes, the first time a service meets this Redis, and
-- answers the layout recorded (data_layout.cc). A service that finds another refuses to start.
--
-- KEYS[1]  the layout record: a hash with version, shards, recorded_by, recorded_at_ms
-- ARGV[1]  the layout version this build writes
-- ARGV[2]  the shard count it was configured with (redis-shards)
-- ARGV[3]  who records it (the binary's name)
-- ARGV[4]  now, in milliseconds since the epoch
-- ARGV[5]  '1' to record when there is no record, '0' only to read it
-- Returns  {version, shards} recorded after the call, or {} when there is none
local recorded = redis.call('HMGET', KEYS[1], 'version', 'shards')
if recorded[1] then
  return {recorded[1], recorded[2]}
end
if ARGV[5] ~= '1' then
  return {}
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'shards', ARGV[2], 'recorded_by', ARGV[3],
           'recorded_at_ms', ARGV[4])
return {ARGV[1], ARGV[2]}
