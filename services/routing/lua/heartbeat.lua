#!lua
-- Extends a held lease (RedisRoutingStore::Heartbeat).
--
-- KEYS[1]  job:<id>
-- KEYS[2]  leases: claimed jobs by lease expiry
-- ARGV[1]  job id
-- ARGV[2]  the lease token presented
-- ARGV[3]  the translator presenting it
-- ARGV[4]  new lease length, ms ('' keeps the claim's)
-- ARGV[5]  now, ms
-- Returns  {'ok', job fields (HGETALL)}, or {'notfound'}, {'notholder'}, {'stale', status},
--          {'expired'} (see check_lease)
local flat = redis.call('HGETALL', KEYS[1])
local h = nil
if #flat > 0 then
  h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
end
-- Need-to-know (issue 16, item 15): a job is the business of the translator that claimed
-- it last (field lb, 'by' for jobs claimed before lb existed) and nobody else: anyone else
-- gets 'notholder', answered as 'notfound' is, before the token is looked at.
if h == nil then return {'notfound'} end
if (h.lb or h.by or '') ~= ARGV[3] then return {'notholder'} end
if h.status ~= '2' or h.token ~= ARGV[2] then return {'stale', h.status} end
if h.by ~= ARGV[3] then return {'notholder'} end
if tonumber(h.lease_exp) < tonumber(ARGV[5]) then return {'expired'} end
local ms = ARGV[4]
if ms == '' then ms = h.lease_ms end
local exp = string.format('%.0f', tonumber(ARGV[5]) + tonumber(ms))
redis.call('HSET', KEYS[1], 'lease_exp', exp, 'lease_ms', ms, 'updated', ARGV[5])
redis.call('ZADD', KEYS[2], exp, ARGV[1])
return {'ok', redis.call('HGETALL', KEYS[1])}
