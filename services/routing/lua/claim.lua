#!lua
-- Claims one queued job (RedisRoutingStore::Claim) after C++ peeked it at the head of its
-- queue and read its request: leases it to the claimer and emits JOB_CLAIMED. 'retry' when
-- the job left the queue since (another claimer took it) or changed.
--
-- KEYS[1]  job:<id>
-- KEYS[2]  q:<pair>, the job's queue
-- KEYS[3]  qa:<pair>, the same queue by creation time
-- KEYS[4]  leases: claimed jobs by lease expiry
-- KEYS[5]  held:<claimer>, the jobs the claimer holds
-- KEYS[6]  dec:<request> of the job's request (its event template)
-- KEYS[7]  seq:<request>, the request's event sequence
-- KEYS[8]  the shard's routing outbox stream
-- KEYS[9]  jobs:<request>, the set of the request's job ids
-- ARGV[1]  job id
-- ARGV[2]  the job's request id, as C++ read it
-- ARGV[3]  the job's lease token, as C++ read it
-- ARGV[4]  now, ms
-- ARGV[5]  lease, ms
-- ARGV[6]  the claimer (authority id)
-- ARGV[7]  JOB_CLAIMED event bytes
-- Returns  {'retry'} or {'claimed', job fields (HGETALL), the request's job ids, the
--          decision's forward status ('' for none)}: what a completion of the job reads
--          first (complete.lua), kept by C++ as a hint so it needs no reads
-- #include event_sequence.lua
local jid, now = ARGV[1], ARGV[4]
if not redis.call('ZSCORE', KEYS[2], jid) then return {'retry'} end
local h = redis.call('HMGET', KEYS[1], 'rid', 'token', 'status', 'urg', 'due')
if h[1] ~= ARGV[2] or h[2] ~= ARGV[3] or h[3] ~= '1' then return {'retry'} end
redis.call('ZREM', KEYS[2], jid)
redis.call('ZREM', KEYS[3], jid)
local exp = string.format('%.0f', tonumber(now) + tonumber(ARGV[5]))
redis.call('HINCRBY', KEYS[1], 'token', 1)
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', '2', 'by', ARGV[6], 'lb', ARGV[6], 'lease_exp', exp,
           'lease_ms', ARGV[5], 'claimed', now, 'updated', now)
redis.call('ZADD', KEYS[4], exp, jid)
local band = 2
if h[4] == '3' then band = 0 elseif h[4] == '2' then band = 1 end
redis.call('ZADD', KEYS[5], string.format('%.0f', band * 10000000000000 + tonumber(h[5])), jid)
local tmpl = redis.call('HGET', KEYS[6], 'tmpl')
local seq = redis.call('INCR', KEYS[7])
redis.call('XADD', KEYS[8], '*', 'ev', rg_append_sequence(tmpl .. ARGV[7], seq))
return {'claimed', redis.call('HGETALL', KEYS[1]), redis.call('SMEMBERS', KEYS[9]),
        redis.call('HGET', KEYS[6], 'fwd') or ''}
