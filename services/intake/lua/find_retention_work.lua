#!lua flags=no-writes
-- One shard's retention work (RedisRequestStore::FindRetentionWork): bounded ranges of the
-- erasures due, and one HSCAN page of the erasures not yet audited.
--
-- KEYS[1]  idx:closed
-- KEYS[2]  idx:tombstoned
-- KEYS[3]  retention:unaudited
-- ARGV[1]  closed cutoff, ms
-- ARGV[2]  tombstone cutoff, ms
-- ARGV[3]  limit
-- Returns  {closed ids, tombstone ids, {field, erased ms, ...}}
local a = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local b = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local c = redis.call('HSCAN', KEYS[3], 0, 'COUNT', ARGV[3])
return {a, b, c[2]}
