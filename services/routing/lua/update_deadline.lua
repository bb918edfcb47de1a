#!lua
-- Sets or removes one deadline of a request (RedisRoutingStore::UpdateDeadline) and re-orders
-- its queued and held jobs by the earliest remaining one. Emits nothing. C++ read the
-- request's jobs first (their queues and holders are keys); when they changed since, the
-- script answers 'retry' before it writes anything.
--
-- KEYS[1]  dedupe marker of the triggering event
-- KEYS[2]  parties:<request>, the request's parties (need-to-know)
-- KEYS[3]  dec:<request>, the decision hash (its 'due' orders the request's jobs)
-- KEYS[4]  dl:<request>, deadline id -> due ms
-- KEYS[5]  jobs:<request>, the set of the request's job ids
-- KEYS[6]  pairs: the language pairs the shard has queued
-- KEYS[7..]  four per job of ARGV[10..]: job:<id>, q:<pair>, qa:<pair>, held:<holder>
-- ARGV[1]  dedupe retention, ms
-- ARGV[2..6]  parties: issuing authority, issuing state, executing authority, requested
--             state, notified authority ('' leaves one as it is)
-- ARGV[7]  deadline id
-- ARGV[8]  due ms ('' removes the deadline)
-- ARGV[9]  E, the number of the request's jobs C++ read
-- ARGV[10..]  E times (job id, status read, token read)
-- Returns  {'duplicate'}, {'retry'} or {'handled'}
if redis.call('EXISTS', KEYS[1]) == 1 then return {'duplicate'} end
local E = tonumber(ARGV[9])
if redis.call('SCARD', KEYS[5]) ~= E then return {'retry'} end
for i = 1, E do
  local a = 10 + (i - 1) * 3
  if redis.call('SISMEMBER', KEYS[5], ARGV[a]) == 0 then return {'retry'} end
  local v = redis.call('HMGET', KEYS[7 + (i - 1) * 4], 'status', 'token')
  if v[1] ~= ARGV[a + 1] or v[2] ~= ARGV[a + 2] then return {'retry'} end
end
redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
local names = {'ia', 'is', 'ea', 'rs', 'na'}
for i = 1, 5 do
  if ARGV[1 + i] ~= '' then redis.call('HSET', KEYS[2], names[i], ARGV[1 + i]) end
end
if ARGV[8] == '' then
  redis.call('HDEL', KEYS[4], ARGV[7])
else
  redis.call('HSET', KEYS[4], ARGV[7], ARGV[8])
end
local earliest = 9000000000000
for _, v in ipairs(redis.call('HVALS', KEYS[4])) do
  if tonumber(v) < earliest then earliest = tonumber(v) end
end
local due = string.format('%.0f', earliest)
redis.call('HSET', KEYS[3], 'due', due)
for i = 1, E do
  local b = 7 + (i - 1) * 4
  local jid = ARGV[10 + (i - 1) * 3]
  local h = redis.call('HMGET', KEYS[b], 'status', 'due', 'urg', 'src', 'tgt', 'created')
  if h[2] ~= due and (h[1] == '1' or h[1] == '2') then
    redis.call('HSET', KEYS[b], 'due', due)
    local band = 2
    if h[3] == '3' then band = 0 elseif h[3] == '2' then band = 1 end
    local score = string.format('%.0f', band * 10000000000000 + earliest)
    if h[1] == '1' then
      redis.call('ZADD', KEYS[b + 1], score, jid)
      redis.call('ZADD', KEYS[b + 2], h[6], jid)
      redis.call('SADD', KEYS[6], string.lower(h[4] .. '>' .. h[5]))
    else
      redis.call('ZADD', KEYS[b + 3], score, jid)
    end
  end
end
return {'handled'}
