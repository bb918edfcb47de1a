#!lua flags=allow-oom
-- Takes or renews a shard's audit sealer lease, with a fencing token, then reads the
-- oldest pending entries and the chain heads of their requests, in one round trip
-- (audit_log.cc). A lease this replica holds under a token it dropped (after a Redis error)
-- is taken again at once under a new token, as the relay's lanes do: waiting for it to
-- expire stopped sealing for a whole lease after every Redis restart, and then every
-- replica sealed the backlog at once. Runs when Redis is full (renewing a lease with
-- PEXPIRE always did): retention's erasure, which frees memory, runs under this lease.
--
-- KEYS[1]  the shard's sealer lease: a hash {owner, token} with a TTL
-- KEYS[2]  its fencing counter
-- KEYS[3]  the shard's pending stream: entries {r: request id, m: entry mac, e: entry}
-- KEYS[4]  the shard's chain heads: a hash request id -> "sequence mac"
-- ARGV[1]  the replica asking
-- ARGV[2]  the lease's time to live, in milliseconds
-- ARGV[3]  the token the replica holds, '' if none
-- ARGV[4]  the most pending entries to read
-- Returns  {0} when another replica holds the lease, else {token, entries (XRANGE's
--          [id, [field, value...]], oldest first), request ids (each once, in order of
--          first appearance), their heads (nil for a request with none yet)}
local cur = redis.call('HMGET', KEYS[1], 'owner', 'token')
local token
if cur[1] and cur[1] ~= ARGV[1] then return {0} end
if cur[1] and cur[2] == ARGV[3] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  token = cur[2]
else
  token = tostring(redis.call('INCR', KEYS[2]))
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local entries = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', ARGV[4])
local rids, seen = {}, {}
for _, e in ipairs(entries) do
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'r' and not seen[f[i + 1]] then
      seen[f[i + 1]] = true
      rids[#rids + 1] = f[i + 1]
    end
  end
end
local heads = {}
if #rids > 0 then heads = redis.call('HMGET', KEYS[4], unpack(rids)) end
return {tonumber(token), entries, rids, heads}
