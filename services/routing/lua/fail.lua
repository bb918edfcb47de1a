#!lua
-- A translator reports a failed job (RedisRoutingStore::Fail): a retryable failure queues it
-- again while it has attempts left, anything else dead-letters it; JOB_FAILED either way. A
-- repeat of the same failure replays. C++ read the job first (its request and queue are
-- keys); when it changed since, the script answers 'retry' before it writes anything.
--
-- KEYS[1]  job:<id>
-- KEYS[2]  leases: claimed jobs by lease expiry
-- KEYS[3]  held:<claimer>, the jobs the claimer holds
-- KEYS[4]  q:<pair>, the job's queue
-- KEYS[5]  qa:<pair>, the same queue by creation time
-- KEYS[6]  pairs: the language pairs the shard has queued
-- KEYS[7]  dead: dead-lettered jobs
-- KEYS[8]  dec:<request> of the job's request (its event template)
-- KEYS[9]  seq:<request>, the request's event sequence
-- KEYS[10]  the shard's routing outbox stream
-- ARGV[1]  job id
-- ARGV[2]  the lease token presented
-- ARGV[3]  the translator presenting it
-- ARGV[4]  failure code
-- ARGV[5]  retryable (0|1)
-- ARGV[6]  max attempts
-- ARGV[7]  now, ms
-- ARGV[8]  the job's request id, as C++ read it
-- ARGV[9]  the job's language pair "<src>><tgt>" (lower case), as C++ read it
-- ARGV[10]  JOB_FAILED event bytes when queued again
-- ARGV[11]  JOB_FAILED event bytes when dead-lettered
-- Returns  {'requeued'|'dead'|'replayed', job fields (HGETALL)}, {'retry'}, or
--          {'notfound'}, {'notholder'}, {'stale', status}, {'expired'} (see heartbeat.lua)
-- #include event_sequence.lua
local flat = redis.call('HGETALL', KEYS[1])
local h = nil
if #flat > 0 then
  h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
end
local token, claimer, now = ARGV[2], ARGV[3], ARGV[7]
if h and h.done_token == token and h.done_kind == 'fail' and (h.lb or h.by or '') == claimer then
  return {'replayed', flat}
end
if h == nil then return {'notfound'} end
if (h.lb or h.by or '') ~= claimer then return {'notholder'} end
if h.status ~= '2' or h.token ~= token then return {'stale', h.status} end
if h.by ~= claimer then return {'notholder'} end
if tonumber(h.lease_exp) < tonumber(now) then return {'expired'} end
if h.rid ~= ARGV[8] or string.lower(h.src .. '>' .. h.tgt) ~= ARGV[9] then return {'retry'} end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'fcode', ARGV[4], 'by', '', 'done_token', token, 'done_kind', 'fail')
local outcome, bytes
if ARGV[5] == '1' and tonumber(h.attempts) < tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[1], 'status', '1', 'updated', now)
  local band = 2
  if h.urg == '3' then band = 0 elseif h.urg == '2' then band = 1 end
  redis.call('ZADD', KEYS[4], string.format('%.0f', band * 10000000000000 + tonumber(h.due)),
             ARGV[1])
  redis.call('ZADD', KEYS[5], h.created, ARGV[1])
  redis.call('SADD', KEYS[6], ARGV[9])
  outcome, bytes = 'requeued', ARGV[10]
else
  redis.call('HSET', KEYS[1], 'status', '4', 'updated', now)
  redis.call('ZADD', KEYS[7], now, ARGV[1])
  outcome, bytes = 'dead', ARGV[11]
end
local tmpl = redis.call('HGET', KEYS[8], 'tmpl')
local seq = redis.call('INCR', KEYS[9])
redis.call('XADD', KEYS[10], '*', 'ev', rg_append_sequence(tmpl .. bytes, seq))
return {outcome, redis.call('HGETALL', KEYS[1])}
