#!lua flags=allow-oom
-- Retention (REQUEST_ERASED; deadline_store.cc, RedisDeadlineStore::EraseRequest): every
-- deadline of the request goes, with its timers, claims, index entries and counts, and the
-- request's event sequence and parties. Emits nothing (the request is gone: nobody is to be
-- told that its deadlines stopped). Runs when Redis is full: it only frees memory.
-- The caller reads the request's deadlines and the authorities they are indexed under first
-- and passes their keys; when they changed since, the script changes nothing and answers
-- {'retry'} (the caller reads again).
--
-- KEYS[1]  the event's duplicate marker (ReceiverScript's)
-- KEYS[2]  the shard's timer set (dl:timers)
-- KEYS[3]  the shard's claimed timers (dl:claims)
-- KEYS[4]  the shard's claim tokens (dl:claimtok)
-- KEYS[5]  the shard's open deadlines (dl:open)
-- KEYS[6]  the shard's counts (dl:stats)
-- KEYS[7]  the request's deadlines (dl:byreq:<request>)
-- KEYS[8]  the request's event sequence (dl:seq:<request>)
-- KEYS[9]  the request's parties (dl:parties:<request>)
-- KEYS[10..]  per deadline of the request, 2 keys: its hash (dl:d:<id>) and the index of
--          the authority it is indexed under (dl:byauth:<authority>)
-- ARGV[1]  the duplicate marker's retention, ms
-- ARGV[2..]  per deadline, 2 arguments: its id and the authority it is indexed under ('' none)
-- Returns  {'handled', number of deadlines erased}, {'duplicate'} or {'retry'}
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return {'duplicate'}
end
local n = (#KEYS - 9) / 2
if redis.call('ZCARD', KEYS[7]) ~= n then
  redis.call('DEL', KEYS[1])
  return {'retry'}
end
for i = 0, n - 1 do
  local id = ARGV[2 + 2 * i]
  if not redis.call('ZSCORE', KEYS[7], id) or
     (redis.call('HGET', KEYS[10 + 2 * i], 'authority') or '') ~= ARGV[3 + 2 * i] then
    redis.call('DEL', KEYS[1])
    return {'retry'}
  end
end
for i = 0, n - 1 do
  local id = ARGV[2 + 2 * i]
  local key = KEYS[10 + 2 * i]
  local old = redis.call('HMGET', key, 'timers', 'open', 'instrument', 'authority', 'state')
  if old[1] then
    for m in string.gmatch(old[1], '%S+') do
      redis.call('ZREM', KEYS[2], m)
      redis.call('ZREM', KEYS[3], m)
      redis.call('HDEL', KEYS[4], m)
    end
  end
  if old[2] == '1' then
    redis.call('HINCRBY', KEYS[6], 'open:' .. old[3], -1)
    redis.call('ZREM', KEYS[5], id)
    if old[4] and old[4] ~= '' then redis.call('ZREM', KEYS[11 + 2 * i], id) end
  end
  if old[5] == '3' then redis.call('HINCRBY', KEYS[6], 'overdue', -1) end
  redis.call('DEL', key)
end
redis.call('DEL', KEYS[7], KEYS[8], KEYS[9])
return {'handled', n}
