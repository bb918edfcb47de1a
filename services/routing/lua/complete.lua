#!lua
-- Completes a held job (RedisRoutingStore::Complete) and emits JOB_COMPLETED, with the
-- request's forward status when it was the request's last open job. A repeat of the same
-- completion replays. C++ read the job's request and that request's jobs first (keys);
-- when they changed since, the script answers 'retry' before it writes anything.
--
-- KEYS[1]  job:<id>
-- KEYS[2]  leases: claimed jobs by lease expiry
-- KEYS[3]  held:<claimer>, the jobs the claimer holds
-- KEYS[4]  dec:<request> of the job's request
-- KEYS[5]  seq:<request>, the request's event sequence
-- KEYS[6]  the shard's routing outbox stream
-- KEYS[7]  jobs:<request>, the set of the request's job ids
-- KEYS[8..]  job:<id> of each job of ARGV[12..]
-- ARGV[1]  job id
-- ARGV[2]  the lease token presented
-- ARGV[3]  the translator presenting it
-- ARGV[4]  translated document id
-- ARGV[5]  translated document sha256
-- ARGV[6]  now, ms
-- ARGV[7]  the job's request id, as C++ read it
-- ARGV[8]  the decision's forward status, as C++ read it ('' for none)
-- ARGV[9]  JOB_COMPLETED event bytes with the forward status (the request's last job)
-- ARGV[10]  JOB_COMPLETED event bytes without a status
-- ARGV[11]  N, the number of the request's jobs C++ read
-- ARGV[12..]  their ids
-- Returns  {'completed'|'replayed', job fields (HGETALL), request done (0|1)}, {'retry'},
--          {'conflict'} (replayed with another document), or {'notfound'}, {'notholder'},
--          {'stale', status}, {'expired'} (see heartbeat.lua)
-- #include event_sequence.lua
local flat = redis.call('HGETALL', KEYS[1])
local h = nil
if #flat > 0 then
  h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
end
local token, claimer, now = ARGV[2], ARGV[3], ARGV[6]
if h and h.done_token == token and h.done_kind == 'complete' and
   (h.lb or h.by or '') == claimer then
  if h.tdoc ~= ARGV[4] then return {'conflict'} end
  return {'replayed', flat, 0}
end
if h == nil then return {'notfound'} end
if (h.lb or h.by or '') ~= claimer then return {'notholder'} end
if h.status ~= '2' or h.token ~= token then return {'stale', h.status} end
if h.by ~= claimer then return {'notholder'} end
if tonumber(h.lease_exp) < tonumber(now) then return {'expired'} end
-- What C++ read must still hold.
local N = tonumber(ARGV[11])
if h.rid ~= ARGV[7] or redis.call('SCARD', KEYS[7]) ~= N or
   (redis.call('HGET', KEYS[4], 'fwd') or '') ~= ARGV[8] then
  return {'retry'}
end
for i = 1, N do
  if redis.call('SISMEMBER', KEYS[7], ARGV[11 + i]) == 0 then return {'retry'} end
end
redis.call('HSET', KEYS[1], 'status', '3', 'tdoc', ARGV[4], 'tsha', ARGV[5],
           'done_token', token, 'done_kind', 'complete', 'updated', now)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local all_done = 1
for i = 1, N do
  local st = redis.call('HGET', KEYS[7 + i], 'status')
  if st ~= '3' and st ~= '5' then all_done = 0 end
end
local dec = redis.call('HMGET', KEYS[4], 'tmpl', 'ended')
local bytes = ARGV[10]
if all_done == 1 and dec[2] ~= '1' then bytes = ARGV[9] end
local seq = redis.call('INCR', KEYS[5])
redis.call('XADD', KEYS[6], '*', 'ev', rg_append_sequence(dec[1] .. bytes, seq))
return {'completed', redis.call('HGETALL', KEYS[1]), all_done}
