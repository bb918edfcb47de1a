#!lua
-- Chains sealed audit entries onto their requests' chains and removes them from the
-- pending stream (audit_log.cc), all or nothing: checks the fencing token and every
-- request's head before writing (C++ sealed the entries after the heads it read with
-- audit_lease_and_read.lua; a head that moved since means retry). Pending entries whose
-- own HMAC did not verify go to the rejected stream instead. Refused whole when Redis is
-- full.
--
-- KEYS[1]  the shard's sealer lease: a hash {owner, token}
-- KEYS[2]  the shard's pending stream
-- KEYS[3]  the shard's chain heads: a hash request id -> "sequence mac"
-- KEYS[4]  the shard's oldest-entry index: a sorted set request id -> time (us)
-- KEYS[5]  the shard's rejected stream
-- KEYS[6..]  one chain list per sealed request, in the order of the requests in ARGV
-- ARGV[1]  the token the sealer holds
-- ARGV[2]  the number of requests sealed (n)
-- ARGV[3]  the number of rejected entries (m)
-- ARGV[4..]  n requests, each: request id, sequence of the head the sealer read (0: none),
--          new head ("sequence mac"), time of its first entry (us), entry count c, then c
--          sealed entries; then m rejected entries, each: pending id, reason; then the
--          pending ids to delete
-- Returns  1 when sealed, -1 when the lease is not held under ARGV[1], -2 when a head
--          moved (nothing written in either case)
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return -1 end
local nreq, nrej = tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4
local blocks = {}
for i = 1, nreq do
  local cur = redis.call('HGET', KEYS[3], ARGV[a])
  local seq = 0
  if cur then seq = tonumber(string.match(cur, '^(%d+) ')) or -1 end
  if seq ~= tonumber(ARGV[a + 1]) then return -2 end
  local count = tonumber(ARGV[a + 4])
  blocks[i] = {ARGV[a], ARGV[a + 2], ARGV[a + 3], a + 5, count}
  a = a + 5 + count
end
for i = 1, nreq do
  local b = blocks[i]
  redis.call('RPUSH', KEYS[5 + i], unpack(ARGV, b[4], b[4] + b[5] - 1))
  redis.call('HSET', KEYS[3], b[1], b[2])
  redis.call('ZADD', KEYS[4], 'NX', b[3], b[1])
end
for i = 1, nrej do
  local e = redis.call('XRANGE', KEYS[2], ARGV[a], ARGV[a])
  if e[1] then
    redis.call('XADD', KEYS[5], '*', 'reason', ARGV[a + 1], 'pending_id', ARGV[a],
               unpack(e[1][2]))
  end
  a = a + 2
end
if a <= #ARGV then redis.call('XDEL', KEYS[2], unpack(ARGV, a, #ARGV)) end
return 1
