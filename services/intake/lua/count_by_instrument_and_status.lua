#!lua flags=no-writes
-- How many requests of one shard are in each (instrument, status) pair: the size of the
-- intersection of the pair's two indexes (RequestCountGauge, intake_metrics.cc).
--
-- KEYS[1..]  pairs of one shard's indexes: idx:instrument:<n>, then idx:status:<n>
-- Returns    the count of each pair, in KEYS order
local out = {}
for i = 1, #KEYS, 2 do
  out[#out + 1] = redis.call('ZINTERCARD', 2, KEYS[i], KEYS[i + 1])
end
return out
