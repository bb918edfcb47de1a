#!lua flags=allow-oom
-- Acknowledges delivered outbox entries for a relay lane, if its lease is still held under
-- the token (outbox_relay.cc). Runs when Redis is full: acknowledging lets the outbox be
-- trimmed.
--
-- KEYS[1]  the emitter's outbox in the shard
-- KEYS[2]  the lane's lease: a hash {owner, token}
-- ARGV[1]  the lane's consumer group (the receiver's name)
-- ARGV[2]  the token the relay holds
-- ARGV[3..]  the entry ids acknowledged
-- Returns  the number acknowledged, or -1 when the lease is not held under ARGV[2]
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then return -1 end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3))
