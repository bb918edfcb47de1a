#!lua flags=allow-oom
-- Releases a shard's audit sealer lease if the replica still holds it under its token
-- (audit_log.cc, at shutdown), so another replica takes the shard over at once.
--
-- KEYS[1]  the shard's sealer lease: a hash {owner, token}
-- ARGV[1]  the replica releasing
-- ARGV[2]  its token
-- Returns  1
local cur = redis.call('HMGET', KEYS[1], 'owner', 'token')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 1
