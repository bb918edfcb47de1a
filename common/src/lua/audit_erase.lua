#!lua flags=allow-oom
-- Erases the oldest entries of a request's audit chain behind a new anchor (audit_log.cc:
-- retention), if the sealer lease is still held under the token and the chain's k-th
-- element is still the one C++ verified (else it changed: retry). Runs when Redis is full:
-- it frees memory.
--
-- KEYS[1]  the shard's sealer lease: a hash {owner, token}
-- KEYS[2]  the request's chain list
-- KEYS[3]  the shard's anchors: a hash request id -> anchor
-- KEYS[4]  the shard's oldest-entry index: a sorted set request id -> time (us)
-- ARGV[1]  the token the sealer holds
-- ARGV[2]  the number of elements erased from the front (k)
-- ARGV[3]  the last element erased, as read
-- ARGV[4]  the request id
-- ARGV[5]  the new anchor
-- ARGV[6]  the time (us) of the oldest entry kept, the request's new score in KEYS[4]
-- Returns  k, or -1 when the lease is not held under ARGV[1], -2 when the chain changed
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return -1 end
local k = tonumber(ARGV[2])
if redis.call('LINDEX', KEYS[2], k - 1) ~= ARGV[3] then return -2 end
redis.call('LTRIM', KEYS[2], k, -1)
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[4])
else
  redis.call('ZADD', KEYS[4], 'XX', ARGV[6], ARGV[4])
end
return k
