#!lua
-- Records a routing decision (RedisRoutingStore::RecordDecision): stores it, emits
-- ROUTING_DECIDED, cancels the queued jobs the decision no longer wants and queues one job
-- per known document in the source language. C++ read the request's jobs and documents
-- first and decided from them; when they changed since, the script answers 'retry' before
-- it writes anything. Events: the stored template followed by C++'s bytes, then the
-- sequence (event_sequence.lua).
--
-- KEYS[1]  dedupe marker of the triggering event
-- KEYS[2]  parties:<request>, the request's parties (need-to-know)
-- KEYS[3]  dec:<request>, the decision hash
-- KEYS[4]  seq:<request>, the request's event sequence
-- KEYS[5]  the shard's routing outbox stream
-- KEYS[6]  unroutable: requests flagged for a person
-- KEYS[7]  jobs:<request>, the set of the request's job ids
-- KEYS[8]  docs:<request>, document id -> "<language>\n<sha256>"
-- KEYS[9]  pairs: the language pairs the shard has queued
-- KEYS[10..]  three per job of ARGV[22..] (job:<id>, q:<pair>, qa:<pair>): the existing
--             jobs, then the jobs this decision creates
-- ARGV[1]  dedupe retention, ms
-- ARGV[2..6]  parties: issuing authority, issuing state, executing authority, requested
--             state, notified authority ('' leaves one as it is)
-- ARGV[7]  now, ms
-- ARGV[8]  request id
-- ARGV[9]  the decision (serialized RoutingDecision)
-- ARGV[10]  translation needed (0|1)
-- ARGV[11]  source language
-- ARGV[12]  target language
-- ARGV[13]  urgency (enum number)
-- ARGV[14]  unroutable (0|1)
-- ARGV[15]  the request's event template (serialized Event)
-- ARGV[16]  the request status once translated (enum number)
-- ARGV[17]  ROUTING_DECIDED's bytes, with its status
-- ARGV[18]  ROUTING_DECIDED's bytes without a status (the request has ended)
-- ARGV[19]  E, the number of existing jobs
-- ARGV[20]  C, the number of jobs to create
-- ARGV[21]  D, the number of documents C++ read
-- ARGV[22..]  E times (job id, status read, token read, cancellation event bytes or ''),
--             then C times (job id, document id, JOB_QUEUED event bytes), then D times
--             (document id, value read)
-- Returns  {'duplicate'}, {'retry'} or {'handled', jobs created}
-- #include event_sequence.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return {'duplicate'} end
local now, rid, tmpl = ARGV[7], ARGV[8], ARGV[15]
local E, C, D = tonumber(ARGV[19]), tonumber(ARGV[20]), tonumber(ARGV[21])
local a = 22
local existing, creating = {}, {}
for i = 1, E do
  existing[i] = {id = ARGV[a], status = ARGV[a + 1], token = ARGV[a + 2], ev = ARGV[a + 3]}
  a = a + 4
end
for i = 1, C do
  creating[i] = {id = ARGV[a], doc = ARGV[a + 1], ev = ARGV[a + 2]}
  a = a + 3
end
-- What C++ read must still hold.
if redis.call('SCARD', KEYS[7]) ~= E or redis.call('HLEN', KEYS[8]) ~= D then
  return {'retry'}
end
for i = 1, D do
  if redis.call('HGET', KEYS[8], ARGV[a]) ~= ARGV[a + 1] then return {'retry'} end
  a = a + 2
end
for i, j in ipairs(existing) do
  if redis.call('SISMEMBER', KEYS[7], j.id) == 0 then return {'retry'} end
  local v = redis.call('HMGET', KEYS[10 + (i - 1) * 3], 'status', 'token')
  if v[1] ~= j.status or v[2] ~= j.token then return {'retry'} end
end
local function emit(bytes)
  local seq = redis.call('INCR', KEYS[4])
  redis.call('XADD', KEYS[5], '*', 'ev', rg_append_sequence(tmpl .. bytes, seq))
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return {'duplicate'} end
local names = {'ia', 'is', 'ea', 'rs', 'na'}
for i = 1, 5 do
  if ARGV[1 + i] ~= '' then redis.call('HSET', KEYS[2], names[i], ARGV[1 + i]) end
end
local ended = redis.call('HGET', KEYS[3], 'ended') == '1'
redis.call('HSET', KEYS[3], 'pb', ARGV[9], 'need', ARGV[10], 'src', ARGV[11], 'tgt', ARGV[12],
           'urg', ARGV[13], 'unroutable', ARGV[14], 'tmpl', tmpl, 'fwd', ARGV[16],
           'updated', now)
redis.call('HSETNX', KEYS[3], 'due', '9000000000000')
if ARGV[14] == '1' and not ended then
  redis.call('ZADD', KEYS[6], now, rid)
else
  redis.call('ZREM', KEYS[6], rid)
end
if ended then emit(ARGV[18]) else emit(ARGV[17]) end
-- A new decision into another language (or none) cancels queued jobs of the old one.
for i, j in ipairs(existing) do
  if j.ev ~= '' then
    local b = 10 + (i - 1) * 3
    redis.call('ZREM', KEYS[b + 1], j.id)
    redis.call('ZREM', KEYS[b + 2], j.id)
    redis.call('HSET', KEYS[b], 'status', '5', 'updated', now)
    emit(j.ev)
  end
end
local created = 0
if ARGV[10] == '1' and not ended then
  local due = redis.call('HGET', KEYS[3], 'due')
  local band = 2
  if ARGV[13] == '3' then band = 0 elseif ARGV[13] == '2' then band = 1 end
  local score = string.format('%.0f', band * 10000000000000 + tonumber(due))
  local pair = string.lower(ARGV[11] .. '>' .. ARGV[12])
  for i, j in ipairs(creating) do
    local b = 10 + (E + i - 1) * 3
    if redis.call('EXISTS', KEYS[b]) == 0 then
      redis.call('HSET', KEYS[b], 'rid', rid, 'doc', j.doc, 'src', ARGV[11], 'tgt', ARGV[12],
                 'status', '1', 'urg', ARGV[13], 'due', due, 'attempts', '0', 'token', '0',
                 'created', now, 'updated', now)
      redis.call('SADD', KEYS[7], j.id)
      redis.call('ZADD', KEYS[b + 1], score, j.id)
      redis.call('ZADD', KEYS[b + 2], now, j.id)
      redis.call('SADD', KEYS[9], pair)
      emit(j.ev)
      created = created + 1
    end
  end
end
return {'handled', created}
