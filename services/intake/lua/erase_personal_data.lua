#!lua flags=allow-oom
-- Erasure step 1 (RedisRequestStore::ErasePersonalData): the request becomes its tombstone,
-- its documents go (their bytes back to the authorities that uploaded them), it moves from
-- the closed index to the tombstone index, REQUEST_ERASED is appended and emitted, and a
-- pending audit is marked. Runs when Redis is full: it frees far more (the documents) than
-- it writes.
--
-- KEYS[1]    the request's hash (req:<id>)
-- KEYS[2]    its history (hist:<id>)
-- KEYS[3]    its document list (docs:<id>)
-- KEYS[4]    the shard's intake outbox
-- KEYS[5]    idx:closed
-- KEYS[6]    idx:tombstoned
-- KEYS[7]    retention:unaudited
-- KEYS[8]    the request's document usage (docbytes:<id>)
-- KEYS[9]    the shard's per-authority document usage (docbytes:authority)
-- KEYS[10]   idx:updated
-- KEYS[11..] each document's chunks (doc:<document id>:data)
-- ARGV[1]    expected etag
-- ARGV[2]    new etag
-- ARGV[3]    closed cutoff, ms
-- ARGV[4]    now, ms
-- ARGV[5]    the tombstone (serialized Request)
-- ARGV[6]    the REQUEST_ERASED event (serialized Event)
-- ARGV[7]    the request id
-- ARGV[8]    the number of documents the erasure was computed on
-- Returns    {'erased'} | {'skip'} (gone, already a tombstone, or not due) | {'stale'}
local id = ARGV[7]
local cur = redis.call('HMGET', KEYS[1], 'etag', 'erased_ms')
if not cur[1] or cur[2] then
  redis.call('ZREM', KEYS[5], id)
  return {'skip'}
end
local closed = redis.call('ZSCORE', KEYS[5], id)
if not closed or tonumber(closed) > tonumber(ARGV[3]) then return {'skip'} end
if cur[1] ~= ARGV[1] then return {'stale'} end
if redis.call('LLEN', KEYS[3]) ~= tonumber(ARGV[8]) then return {'stale'} end
for k = 11, #KEYS do redis.call('DEL', KEYS[k]) end
redis.call('DEL', KEYS[3])
local usage = redis.call('HGETALL', KEYS[8])
for k = 1, #usage, 2 do
  if string.sub(usage[k], 1, 2) == 'a:' then
    local who = string.sub(usage[k], 3)
    if redis.call('HINCRBY', KEYS[9], who, -tonumber(usage[k + 1])) <= 0 then
      redis.call('HDEL', KEYS[9], who)
    end
  end
end
redis.call('DEL', KEYS[8])
redis.call('HSET', KEYS[1], 'pb', ARGV[5], 'etag', ARGV[2], 'updated_ms', ARGV[4],
           'erased_ms', ARGV[4])
redis.call('HDEL', KEYS[1], 'nd')  -- a tombstone has no deadline (intake's next deadline)
redis.call('ZADD', KEYS[10], ARGV[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('ZADD', KEYS[6], ARGV[4], id)
redis.call('RPUSH', KEYS[2], ARGV[6])
redis.call('XADD', KEYS[4], '*', 'ev', ARGV[6])
redis.call('HSET', KEYS[7], '1:' .. id, ARGV[4])
return {'erased'}
