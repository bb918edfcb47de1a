#!lua
-- Remembers a document (RedisRoutingStore::AddDocument) and queues its job when the
-- request's decision needs it translated. C++ read the decision's languages first (the job's
-- id and queue derive from them); when they changed since, the script answers 'retry'
-- before it writes anything.
--
-- KEYS[1]  dedupe marker of the triggering event
-- KEYS[2]  parties:<request>, the request's parties (need-to-know)
-- KEYS[3]  dec:<request>, the decision hash
-- KEYS[4]  seq:<request>, the request's event sequence
-- KEYS[5]  the shard's routing outbox stream
-- KEYS[6]  docs:<request>, document id -> "<language>\n<sha256>"
-- KEYS[7]  jobs:<request>, the set of the request's job ids
-- KEYS[8]  pairs: the language pairs the shard has queued
-- KEYS[9]  job:<id> of the job the document would get
-- KEYS[10]  q:<pair>, that job's queue
-- KEYS[11]  qa:<pair>, that queue by creation time
-- ARGV[1]  dedupe retention, ms
-- ARGV[2..6]  parties: issuing authority, issuing state, executing authority, requested
--             state, notified authority ('' leaves one as it is)
-- ARGV[7]  now, ms
-- ARGV[8]  request id
-- ARGV[9]  document id
-- ARGV[10]  document language
-- ARGV[11]  document sha256
-- ARGV[12]  the decision's source language C++ read ('' for none)
-- ARGV[13]  the decision's target language C++ read ('' for none)
-- ARGV[14]  the job's id
-- ARGV[15]  JOB_QUEUED event bytes
-- Returns  {'duplicate'}, {'retry'} or {'handled', jobs created (0|1)}
-- #include event_sequence.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return {'duplicate'} end
local dec = redis.call('HMGET', KEYS[3], 'need', 'src', 'tgt', 'urg', 'due', 'ended', 'tmpl')
if (dec[2] or '') ~= ARGV[12] or (dec[3] or '') ~= ARGV[13] then return {'retry'} end
redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
local names = {'ia', 'is', 'ea', 'rs', 'na'}
for i = 1, 5 do
  if ARGV[1 + i] ~= '' then redis.call('HSET', KEYS[2], names[i], ARGV[1 + i]) end
end
local now, rid, jid = ARGV[7], ARGV[8], ARGV[14]
redis.call('HSET', KEYS[6], ARGV[9], ARGV[10] .. '\n' .. ARGV[11])
if dec[1] ~= '1' or dec[6] == '1' or string.lower(ARGV[10]) ~= string.lower(dec[2]) then
  return {'handled', 0}
end
if redis.call('EXISTS', KEYS[9]) == 1 then return {'handled', 0} end
local due = dec[5] or '9000000000000'
local band = 2
if dec[4] == '3' then band = 0 elseif dec[4] == '2' then band = 1 end
redis.call('HSET', KEYS[9], 'rid', rid, 'doc', ARGV[9], 'src', dec[2], 'tgt', dec[3],
           'status', '1', 'urg', dec[4], 'due', due, 'attempts', '0', 'token', '0',
           'created', now, 'updated', now)
redis.call('SADD', KEYS[7], jid)
redis.call('ZADD', KEYS[10], string.format('%.0f', band * 10000000000000 + tonumber(due)), jid)
redis.call('ZADD', KEYS[11], now, jid)
redis.call('SADD', KEYS[8], string.lower(dec[2] .. '>' .. dec[3]))
local seq = redis.call('INCR', KEYS[4])
redis.call('XADD', KEYS[5], '*', 'ev', rg_append_sequence(dec[7] .. ARGV[15], seq))
return {'handled', 1}
