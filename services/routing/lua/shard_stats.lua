#!lua flags=no-writes
-- One shard's queue gauges (RedisRoutingStore::Stats). C++ read the shard's language pairs
-- first (their queues are keys); 'retry' when the set changed since.
--
-- KEYS[1]  dead: dead-lettered jobs
-- KEYS[2]  unroutable: requests flagged for a person
-- KEYS[3]  pairs: the language pairs the shard has queued
-- KEYS[4..]  two per pair of ARGV[2..]: q:<pair>, qa:<pair>
-- ARGV[1]  N, the number of pairs
-- ARGV[2..]  the pairs "<src>><tgt>"
-- Returns  {'retry'} or {dead count, unroutable count, then per pair: pair, depth, oldest
--          creation ms ('' for none)}
local N = tonumber(ARGV[1])
if redis.call('SCARD', KEYS[3]) ~= N then return {'retry'} end
local out = {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
for i = 1, N do
  if redis.call('SISMEMBER', KEYS[3], ARGV[1 + i]) == 0 then return {'retry'} end
  local oldest = redis.call('ZRANGE', KEYS[3 + 2 * i], 0, 0, 'WITHSCORES')
  out[#out + 1] = ARGV[1 + i]
  out[#out + 1] = redis.call('ZCARD', KEYS[2 + 2 * i])
  out[#out + 1] = oldest[2] or ''
end
return out
