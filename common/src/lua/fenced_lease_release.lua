#!lua flags=allow-oom
-- Releases a fenced lease if the replica still holds it under its token (fenced_lease.cc,
-- at shutdown: relay lanes, the audit sealer's shards), so another replica takes over at
-- once instead of after the lease's time to live.
--
-- KEYS[1]  the lease: a hash {owner, token}
-- ARGV[1]  the replica releasing
-- ARGV[2]  its token
-- Returns  1
local cur = redis.call('HMGET', KEYS[1], 'owner', 'token')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 1
