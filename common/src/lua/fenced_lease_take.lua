#!lua flags=allow-oom
-- Takes or renews a fenced lease (fenced_lease.cc): one replica at a time acts on what the
-- lease guards (a relay lane), and every step it takes checks the token, so a replica that
-- lost the lease cannot act on it any more. A lease this replica holds under a token it no
-- longer trusts (it dropped it after a Redis error, not knowing whether its last step ran)
-- is taken again at once under a new token, which fences off that step; waiting for it to
-- expire left the work idle for a whole lease after every Redis restart, and then every
-- replica resumed at once. Runs when Redis is full: the holder's steps free memory
-- (acknowledging lets an outbox be trimmed). audit_lease_and_read.lua takes the audit
-- sealer's lease the same way, in the same round trip as its read.
--
-- KEYS[1]  the lease: a hash {owner, token} with a TTL
-- KEYS[2]  its fencing counter
-- ARGV[1]  the replica asking
-- ARGV[2]  the lease's time to live, in milliseconds
-- ARGV[3]  the token the replica holds, '' if none
-- Returns  the token held after the call, or 0 when another replica holds the lease
local cur = redis.call('HMGET', KEYS[1], 'owner', 'token')
if cur[1] then
  if cur[1] == ARGV[1] and cur[2] == ARGV[3] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(cur[2])
  end
  if cur[1] ~= ARGV[1] then return 0 end
end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return token
