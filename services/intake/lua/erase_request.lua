#!lua flags=allow-oom
-- Erasure step 2 (RedisRequestStore::EraseRequest): removes the tombstone, its history, its
-- document list and its index entries, and marks a pending audit. C++ read the tombstone's
-- hash first and passes the index entries it names; a hash that changed since answers
-- 'moved' (C++ reads again). Runs when Redis is full: it frees the tombstone, its history
-- and its index entries.
--
-- KEYS[1]    the tombstone's hash (req:<id>)
-- KEYS[2]    its history (hist:<id>)
-- KEYS[3]    its document list (docs:<id>)
-- KEYS[4]    idx:tombstoned
-- KEYS[5]    retention:unaudited
-- KEYS[6]    the shard's request counts (hash "<instrument>:<status>" -> requests; issue 19)
-- KEYS[7..]  the indexes it leaves: idx:all, idx:updated, idx:closed, then every
--            idx:<field>:<value> and need-to-know party index its hash names, and the
--            worklist hashes beside those party indexes (wl:..., whose field it deletes)
-- ARGV[1]    the request id
-- ARGV[2]    tombstone cutoff, ms
-- ARGV[3]    now, ms
-- ARGV[4..]  the hash's fields the keys were computed from, as read: field, value, ...
--            (every field but pb, etag, created_ms, updated_ms, erased_ms and nd)
-- Returns    {'erased'} | {'skip'} (no tombstone made at or before the cutoff) | {'moved'}
local id = ARGV[1]
local t = redis.call('ZSCORE', KEYS[4], id)
if not t or tonumber(t) > tonumber(ARGV[2]) then return {'skip'} end
local h = redis.call('HGETALL', KEYS[1])
local stored = {pb = true, etag = true, created_ms = true, updated_ms = true, erased_ms = true,
                nd = true}
local read = {}
local n = 0
for k = 4, #ARGV, 2 do
  read[ARGV[k]] = ARGV[k + 1]
  n = n + 1
end
for k = 1, #h, 2 do
  if not stored[h[k]] then
    if read[h[k]] ~= h[k + 1] then return {'moved'} end
    n = n - 1
  end
end
if n ~= 0 then return {'moved'} end
if read['instrument'] and read['status'] then
  redis.call('HINCRBY', KEYS[6], read['instrument'] .. ':' .. read['status'], -1)
end
for k = 7, #KEYS do
  if string.find(KEYS[k], '}:wl:', 1, true) then
    redis.call('HDEL', KEYS[k], id)
  else
    redis.call('ZREM', KEYS[k], id)
  end
end
redis.call('ZREM', KEYS[4], id)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[5], '2:' .. id, ARGV[3])
return {'erased'}
