#!lua
-- Replaces an owner's subscription's signing secret; the previous one stays valid until it
-- expires (redis_subscription_store.cc).
--
-- KEYS[1]  the subscription: a hash
-- ARGV[1]  the caller, who must own it
-- ARGV[2]  the new secret
-- ARGV[3]  now, in ms
-- ARGV[4]  when the previous secret expires, in ms
-- Returns  {'absent'} | {'ok', uri, fi, ft, fs, created ms}
local h = redis.call('HMGET', KEYS[1], 'owner', 'sec', 'uri', 'fi', 'ft', 'fs', 'ct')
if not h[1] or h[1] ~= ARGV[1] then return {'absent'} end
redis.call('HSET', KEYS[1], 'osec', h[2], 'oexp', ARGV[4], 'sec', ARGV[2], 'rot', ARGV[3])
return {'ok', h[3], h[4] or '', h[5] or '', h[6] or '', h[7] or ''}
