#!lua
-- Stores a new request with its first history event, its index entries and, with an
-- idempotency key, the key's record, in one step (RedisRequestStore::Create). Refused whole
-- by a full Redis: it only grows memory.
--
-- KEYS[1]    the request's hash (req:<id>)
-- KEYS[2]    its history (hist:<id>)
-- KEYS[3]    the idempotency record (idem:<scope>:<key>; idem:- when there is no key)
-- KEYS[4]    the shard's intake outbox
-- KEYS[5]    the shard's request counts (hash "<instrument>:<status>" -> requests: the
--            requests gauge reads it, issue 19)
-- KEYS[6..]  the indexes the request enters, scored by its creation time: idx:all,
--            idx:updated, its status, instrument and urgency indexes, its state indexes
--            and its need-to-know party indexes (see redis_request_store.h), then ARGV[16]
--            worklist hashes (wl:a:<authority>, wl:s:<state>: id -> its worklist row)
-- ARGV[1]    the request id
-- ARGV[2]    the request (serialized rogatory.intake.v1.Request)
-- ARGV[3]    the idempotency fingerprint ('' = no idempotency key)
-- ARGV[4]    status
-- ARGV[5]    instrument
-- ARGV[6]    urgency
-- ARGV[7]    issuing state
-- ARGV[8]    requested state ('' = none)
-- ARGV[9]    issuing authority id
-- ARGV[10]   executing authority id ('' = none)
-- ARGV[11]   creation time, ms
-- ARGV[12]   the version (etag)
-- ARGV[13]   the idempotency record's time to live, ms
-- ARGV[14]   the first history event (serialized rogatory.common.v1.Event)
-- ARGV[15]   an earlier request the record may name that is known to be gone ('' = none)
-- ARGV[16]   how many worklist hashes end KEYS
-- Returns    {'created'} | {'replayed', earlier id}: the key's request, which C++ reads |
--            {'conflict'}: the key was used with another fingerprint | {'collision'}: the id
--            is taken
local id, fp, created = ARGV[1], ARGV[3], ARGV[11]
if fp ~= '' then
  local earlier = redis.call('HMGET', KEYS[3], 'fp', 'id')
  if earlier[1] then
    if earlier[1] ~= fp then return {'conflict'} end
    if earlier[2] and earlier[2] ~= ARGV[15] then return {'replayed', earlier[2]} end
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'collision'} end
redis.call('HSET', KEYS[1], 'pb', ARGV[2], 'status', ARGV[4], 'instrument', ARGV[5],
           'issuing_state', ARGV[7], 'requested_state', ARGV[8], 'created_ms', created,
           'updated_ms', created, 'etag', ARGV[12], 'urgency', ARGV[6],
           'issuing_authority', ARGV[9], 'executing_authority', ARGV[10])
redis.call('RPUSH', KEYS[2], ARGV[14])
redis.call('XADD', KEYS[4], '*', 'ev', ARGV[14])
local nwl = tonumber(ARGV[16])
for i = 6, #KEYS - nwl do redis.call('ZADD', KEYS[i], created, id) end
redis.call('HINCRBY', KEYS[5], ARGV[5] .. ':' .. ARGV[4], 1)
-- The worklist row (RedisRequestStore::List): the fields a worklist filters and orders on,
-- separated by \31: status, instrument, urgency, issuing state, requested state, issuing
-- authority, executing authority, created ms, next due ms ('' = none).
local row = table.concat({ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10],
                          created, ''}, '\31')
for i = #KEYS - nwl + 1, #KEYS do redis.call('HSET', KEYS[i], id, row) end
if fp ~= '' then
  redis.call('HSET', KEYS[3], 'fp', fp, 'id', id)
  redis.call('PEXPIRE', KEYS[3], ARGV[13])
end
return {'created'}
