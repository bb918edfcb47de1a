#!lua flags=allow-oom
-- Releases a relay lane's lease if the replica still holds it under its token
-- (outbox_relay.cc, at shutdown), so another replica takes the lane over at once.
--
-- KEYS[1]  the lane's lease: a hash {owner, token}
-- ARGV[1]  the replica releasing
-- ARGV[2]  its token
-- Returns  1
local cur = redis.call('HMGET', KEYS[1], 'owner', 'token')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 1
