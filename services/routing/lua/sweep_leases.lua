#!lua
-- Returns jobs whose leases ran out to their queues, or dead-letters them once out of
-- attempts (RedisRoutingStore::SweepExpiredLeases), each with a JOB_FAILED event. C++ read
-- the due leases and their jobs first (holders, queues and requests are keys); a job that
-- changed since (its token or status) is left for the next sweep.
--
-- KEYS[1]  leases: claimed jobs by lease expiry
-- KEYS[2]  pairs: the language pairs the shard has queued
-- KEYS[3]  dead: dead-lettered jobs
-- KEYS[4]  the shard's routing outbox stream
-- KEYS[5..]  six per job of ARGV[4..]: job:<id>, held:<holder>, q:<pair>, qa:<pair>,
--            dec:<request>, seq:<request>
-- ARGV[1]  now, ms
-- ARGV[2]  max attempts
-- ARGV[3]  N, the number of jobs
-- ARGV[4..]  N times (job id, token read, status read, language pair read, JOB_FAILED bytes
--            when queued again, JOB_FAILED bytes when dead-lettered)
-- Returns  {leases expired, of those dead-lettered}
-- #include event_sequence.lua
local now = ARGV[1]
local expired, dead = 0, 0
for i = 1, tonumber(ARGV[3]) do
  local a = 4 + (i - 1) * 6
  local b = 5 + (i - 1) * 6
  local jid = ARGV[a]
  local exp = redis.call('ZSCORE', KEYS[1], jid)
  local h = redis.call('HMGET', KEYS[b], 'token', 'status', 'lease_exp', 'attempts', 'urg',
                       'due', 'created')
  if exp and tonumber(exp) <= tonumber(now) then
    if h[1] == false then
      redis.call('ZREM', KEYS[1], jid)
    elseif h[1] == ARGV[a + 1] and h[2] == ARGV[a + 2] then
      redis.call('ZREM', KEYS[1], jid)
      if h[2] == '2' and tonumber(h[3]) <= tonumber(now) then
        expired = expired + 1
        redis.call('ZREM', KEYS[b + 1], jid)
        redis.call('HSET', KEYS[b], 'by', '', 'fcode', 'LEASE_EXPIRED')
        local bytes
        if tonumber(h[4]) >= tonumber(ARGV[2]) then
          redis.call('HSET', KEYS[b], 'status', '4', 'updated', now)
          redis.call('ZADD', KEYS[3], now, jid)
          bytes = ARGV[a + 5]
          dead = dead + 1
        else
          redis.call('HSET', KEYS[b], 'status', '1', 'updated', now)
          local band = 2
          if h[5] == '3' then band = 0 elseif h[5] == '2' then band = 1 end
          redis.call('ZADD', KEYS[b + 2],
                     string.format('%.0f', band * 10000000000000 + tonumber(h[6])), jid)
          redis.call('ZADD', KEYS[b + 3], h[7], jid)
          redis.call('SADD', KEYS[2], ARGV[a + 3])
          bytes = ARGV[a + 4]
        end
        local tmpl = redis.call('HGET', KEYS[b + 4], 'tmpl')
        local seq = redis.call('INCR', KEYS[b + 5])
        redis.call('XADD', KEYS[4], '*', 'ev', rg_append_sequence(tmpl .. bytes, seq))
      end
    end
  end
end
return {expired, dead}
