#!lua flags=allow-oom
-- Reads a batch of a relay lane's outbox entries, if the lane's lease is still held under
-- the token (outbox_relay.cc). Entries read before but not acknowledged come first (a crash
-- between delivery and acknowledgement, or a lane taken over), then new ones. Runs when
-- Redis is full (XREADGROUP is not refused then either): delivering and acknowledging is
-- what lets the outbox be trimmed.
--
-- KEYS[1]  the emitter's outbox in the shard: a stream of {ev: serialized Event}
-- KEYS[2]  the lane's lease: a hash {owner, token}
-- ARGV[1]  the lane's consumer group (the receiver's name)
-- ARGV[2]  the token the relay holds
-- ARGV[3]  the most entries to read
-- Returns  nil when the lease is not held under ARGV[2]; else the entries, XREADGROUP's
--          [id, [field, value...]] (fields nil for an entry trimmed while pending)
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then return false end
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], 'relay', 'COUNT', ARGV[3],
                     'STREAMS', KEYS[1], '0')
if r and r[1] and #r[1][2] > 0 then return r[1][2] end
r = redis.call('XREADGROUP', 'GROUP', ARGV[1], 'relay', 'COUNT', ARGV[3],
               'STREAMS', KEYS[1], '>')
if r then return r[1][2] end
return {}
