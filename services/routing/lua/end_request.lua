#!lua
-- The request ended (RedisRoutingStore::EndRequest: withdrawn, refused, closed): its queued
-- and claimed jobs are cancelled, each with a JOB_CANCELLED event. C++ read the request's
-- jobs first (their queues and holders are keys); when they changed since, the script
-- answers 'retry' before it writes anything.
--
-- KEYS[1]  dedupe marker of the triggering event
-- KEYS[2]  parties:<request>, the request's parties (need-to-know)
-- KEYS[3]  dec:<request>, the decision hash
-- KEYS[4]  seq:<request>, the request's event sequence
-- KEYS[5]  the shard's routing outbox stream
-- KEYS[6]  unroutable: requests flagged for a person
-- KEYS[7]  jobs:<request>, the set of the request's job ids
-- KEYS[8]  leases: claimed jobs by lease expiry
-- KEYS[9..]  four per job of ARGV[10..]: job:<id>, q:<pair>, qa:<pair>, held:<holder>
-- ARGV[1]  dedupe retention, ms
-- ARGV[2..6]  parties: issuing authority, issuing state, executing authority, requested
--             state, notified authority ('' leaves one as it is)
-- ARGV[7]  now, ms
-- ARGV[8]  request id
-- ARGV[9]  E, the number of the request's jobs C++ read
-- ARGV[10..]  E times (job id, status read, token read, JOB_CANCELLED event bytes or ''
--             for a job that stays as it is)
-- Returns  {'duplicate'}, {'retry'} or {'handled', jobs cancelled}
-- #include event_sequence.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return {'duplicate'} end
local E = tonumber(ARGV[9])
if redis.call('SCARD', KEYS[7]) ~= E then return {'retry'} end
for i = 1, E do
  local a = 10 + (i - 1) * 4
  if redis.call('SISMEMBER', KEYS[7], ARGV[a]) == 0 then return {'retry'} end
  local v = redis.call('HMGET', KEYS[9 + (i - 1) * 4], 'status', 'token')
  if v[1] ~= ARGV[a + 1] or v[2] ~= ARGV[a + 2] then return {'retry'} end
end
redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
local names = {'ia', 'is', 'ea', 'rs', 'na'}
for i = 1, 5 do
  if ARGV[1 + i] ~= '' then redis.call('HSET', KEYS[2], names[i], ARGV[1 + i]) end
end
local now = ARGV[7]
redis.call('HSET', KEYS[3], 'ended', '1')
redis.call('ZREM', KEYS[6], ARGV[8])
local tmpl = redis.call('HGET', KEYS[3], 'tmpl')
local cancelled = 0
for i = 1, E do
  local a = 10 + (i - 1) * 4
  local b = 9 + (i - 1) * 4
  local jid, status = ARGV[a], ARGV[a + 1]
  if ARGV[a + 3] ~= '' and (status == '1' or status == '2') then
    if status == '1' then
      redis.call('ZREM', KEYS[b + 1], jid)
      redis.call('ZREM', KEYS[b + 2], jid)
    else
      redis.call('ZREM', KEYS[b + 3], jid)
    end
    redis.call('ZREM', KEYS[8], jid)
    redis.call('HSET', KEYS[b], 'status', '5', 'updated', now)
    local seq = redis.call('INCR', KEYS[4])
    redis.call('XADD', KEYS[5], '*', 'ev', rg_append_sequence(tmpl .. ARGV[a + 3], seq))
    cancelled = cancelled + 1
  end
end
return {'handled', cancelled}
