#!lua flags=allow-oom
-- Deletes an owner's subscription (redis_subscription_store.cc). Runs when Redis is full:
-- it only frees memory.
--
-- KEYS[1]  the owner's subscriptions: a set of ids
-- KEYS[2]  the subscription: a hash
-- ARGV[1]  the subscription's id
-- ARGV[2]  the caller, who must own it
-- Returns  'deleted' | 'absent' | 'foreign' (another authority owns it)
local o = redis.call('HGET', KEYS[2], 'owner')
if not o then return 'absent' end
if o ~= ARGV[2] then return 'foreign' end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[1], ARGV[1])
return 'deleted'
