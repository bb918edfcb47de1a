#!lua flags=allow-oom
-- Retention (REQUEST_ERASED; redis_event_store.cc: EraseRequest), once, with the receiver's
-- duplicate marker: the copies of the request's events kept as evidence payloads ("pb") go,
-- and so do its pending retrieval timers and its catch-up list. The evidence itself and the
-- party record hold no personal data and stay until evidence retention expires them. The
-- evidence keys come from the caller, who read the request's events: when they are not what
-- the caller passed, nothing is written and the script answers 'retry' with the events as
-- they are. Runs when Redis is full: it only frees memory.
--
-- KEYS[1]    the receiver's duplicate marker for the event (EventKeys::Seen), with a TTL
-- KEYS[2]    the request's events (zset by accept ms)
-- KEYS[3]    the shard's retrieval timers (zset by due ms)
-- KEYS[4]    the request's catch-up list
-- KEYS[5..]  the evidence (hash) of each event of ARGV[2..], in the same order
-- ARGV[1]    the duplicate marker's retention, ms
-- ARGV[2..]  the request's event ids, as the caller read them from KEYS[2]
-- Returns    {'duplicate'} (nothing changed) | {'retry', event ids...} (nothing changed) |
--            {'erased', events}
if redis.call('EXISTS', KEYS[1]) == 1 then return {'duplicate'} end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
local same = #ids == #ARGV - 1
for i = 1, #ids do
  if not same then break end
  same = ids[i] == ARGV[1 + i]
end
if not same then
  local answer = {'retry'}
  for _, id in ipairs(ids) do answer[#answer + 1] = id end
  return answer
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
for i, eid in ipairs(ids) do
  redis.call('HDEL', KEYS[4 + i], 'pb')
  for _, f in ipairs(redis.call('HKEYS', KEYS[4 + i])) do
    local who = string.match(f, '^%d+|([^|]*)|')
    if who then redis.call('ZREM', KEYS[3], eid .. '|' .. who) end
  end
end
redis.call('DEL', KEYS[4])
return {'erased', #ids}
