#!lua flags=allow-oom
-- Retention (RedisRoutingStore::EraseRequest, REQUEST_ERASED): intake erased the request's
-- personal data, so everything routing keeps about it goes: decision, documents, deadlines,
-- sequence, parties, and every job (queued, held, finished or dead-lettered) with its queue,
-- lease and dead-letter entries. Emits nothing; runs when Redis is full (it frees memory).
-- C++ read the request's jobs first (their queues and holders are keys); when they changed
-- since, the script answers 'retry' before it writes anything.
--
-- KEYS[1]  dedupe marker of the triggering event
-- KEYS[2]  unroutable: requests flagged for a person
-- KEYS[3]  leases: claimed jobs by lease expiry
-- KEYS[4]  dead: dead-lettered jobs
-- KEYS[5]  dec:<request>
-- KEYS[6]  seq:<request>
-- KEYS[7]  docs:<request>
-- KEYS[8]  dl:<request>
-- KEYS[9]  jobs:<request>
-- KEYS[10]  parties:<request>
-- KEYS[11..]  four per job of ARGV[4..]: job:<id>, q:<pair>, qa:<pair>, held:<holder>
-- ARGV[1]  dedupe retention, ms
-- ARGV[2]  request id
-- ARGV[3]  E, the number of the request's jobs C++ read
-- ARGV[4..]  E times (job id, holder read ('' for none))
-- Returns  {'duplicate'}, {'retry'} or {'handled', jobs erased}
if redis.call('EXISTS', KEYS[1]) == 1 then return {'duplicate'} end
local E = tonumber(ARGV[3])
if redis.call('SCARD', KEYS[9]) ~= E then return {'retry'} end
for i = 1, E do
  local a = 4 + (i - 1) * 2
  if redis.call('SISMEMBER', KEYS[9], ARGV[a]) == 0 then return {'retry'} end
  if (redis.call('HGET', KEYS[11 + (i - 1) * 4], 'by') or '') ~= ARGV[a + 1] then
    return {'retry'}
  end
end
redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
local erased = 0
for i = 1, E do
  local jid = ARGV[4 + (i - 1) * 2]
  local b = 11 + (i - 1) * 4
  if redis.call('EXISTS', KEYS[b]) == 1 then
    redis.call('ZREM', KEYS[b + 1], jid)
    redis.call('ZREM', KEYS[b + 2], jid)
    redis.call('ZREM', KEYS[b + 3], jid)
    redis.call('ZREM', KEYS[3], jid)
    redis.call('ZREM', KEYS[4], jid)
    redis.call('DEL', KEYS[b])
    erased = erased + 1
  end
end
redis.call('DEL', KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10])
return {'handled', erased}
