#!lua
-- Applies a change of a stored request in one step (RedisRequestStore::Mutate; see Mutation
-- in request_store.h). C++ computed the index entries the change moves from the hash fields
-- the change was computed on (the `checked` pairs); a field that has another value now
-- answers 'moved' with the current values, and C++ computes the keys again. Refused whole by
-- a full Redis: a change grows the history and the outbox.
-- Retention: a status change into a final status (re)indexes the request in idx:closed by
-- the change's time; one out of it unindexes it; a tombstone (erased_ms) is never indexed.
--
-- KEYS[1]    the request's hash (req:<id>)
-- KEYS[2]    its history (hist:<id>)
-- KEYS[3]    the shard's intake outbox
-- KEYS[4]    the idempotency record (idem:- when there is no key)
-- KEYS[5]    the received event's dedupe marker (seen:- when none)
-- KEYS[6]    the staged document's chunks (doc:- when no document is committed)
-- KEYS[7]    the request's document list
-- KEYS[8]    the request's document usage
-- KEYS[9]    the shard's per-authority document usage (docbytes:authority)
-- KEYS[10]   idx:updated
-- KEYS[11]   idx:closed
-- KEYS[12]   the shard's request counts (hash "<instrument>:<status>" -> requests; issue 19)
-- KEYS[13..] the indexes the change moves the request between: ARGV[16] field indexes it
--            leaves, ARGV[17] it enters, then ARGV[18] party indexes it leaves and ARGV[19]
--            it enters (the party ones are left alone on a tombstone), then ARGV[23]
--            worklist hashes the request leaves (HDEL) and ARGV[24] whose row it refreshes
--            from the hash as changed (its parties' wl:a:/wl:s:; HDEL on a tombstone)
-- ARGV[1]    expected version ('' = unguarded)
-- ARGV[2]    new version ('' = keep, and keep the update time)
-- ARGV[3]    the change's time, ms
-- ARGV[4]    the new request (serialized Request; '' = keep)
-- ARGV[5]    idempotency fingerprint ('' = none)
-- ARGV[6]    idempotency record's time to live, ms
-- ARGV[7]    the result a replay of the key answers
-- ARGV[8]    the dedupe marker's time to live, ms ('' = no marker)
-- ARGV[9]    the request id
-- ARGV[10]   the committed document (serialized Document; '' = none)
-- ARGV[11]   the authority the document is charged to
-- ARGV[12]   the document's size, bytes
-- ARGV[13]   the request's document bound, bytes ('0' = none)
-- ARGV[14]   the authority's document bound, bytes ('0' = none)
-- ARGV[15]   the final statuses (FinalStatusesText) when the change moves the status, else ''
-- ARGV[16]   how many field indexes the request leaves
-- ARGV[17]   how many field indexes it enters
-- ARGV[18]   how many party indexes it leaves
-- ARGV[19]   how many party indexes it enters
-- ARGV[20]   how many checked field/value pairs follow
-- ARGV[21]   how many field/value pairs to set
-- ARGV[22]   how many history events
-- ARGV[23]   how many worklist hashes the request leaves
-- ARGV[24]   how many worklist hashes get its row
-- ARGV[25]   the charged authority's committed document bytes in the other shards, read
--            just before the script (two commits in different shards may both pass)
-- ARGV[26..] the checked pairs (a missing field reads as ''), the pairs to set, the history
--            events, then the outbox events
-- Returns    {'applied'} | {'replayed', result} | {'conflict'} | {'duplicate'} |
--            {'missing'} | {'stale', version} | {'moved', field, value, ...} (the current
--            values of the checked fields) | {'nodata'} (the staged document expired) |
--            {'quota', 'request'|'authority', used}
-- #include document_quota.lua
if ARGV[8] ~= '' and redis.call('EXISTS', KEYS[5]) == 1 then return {'duplicate'} end
local fp = ARGV[5]
if fp ~= '' then
  local earlier = redis.call('HMGET', KEYS[4], 'fp', 'res')
  if earlier[1] then
    if earlier[1] ~= fp or not earlier[2] then return {'conflict'} end
    return {'replayed', earlier[2]}
  end
end
local cur = redis.call('HMGET', KEYS[1], 'etag', 'created_ms')
if not cur[1] then return {'missing'} end
if ARGV[1] ~= '' and cur[1] ~= ARGV[1] then return {'stale', cur[1]} end
local id = ARGV[9]
local nc, nf, nh = tonumber(ARGV[20]), tonumber(ARGV[21]), tonumber(ARGV[22])
local i = 26
local moved = {}
local same = true
for _ = 1, nc do
  local f, v = ARGV[i], ARGV[i + 1]
  local now = redis.call('HGET', KEYS[1], f) or ''
  moved[#moved + 1] = f
  moved[#moved + 1] = now
  if now ~= v then same = false end
  i = i + 2
end
if not same then
  table.insert(moved, 1, 'moved')
  return moved
end
if ARGV[10] ~= '' then
  if redis.call('EXISTS', KEYS[6]) == 0 then return {'nodata'} end
  local adding = tonumber(ARGV[12])
  local authority_used = tonumber(redis.call('HGET', KEYS[9], ARGV[11]) or '0') +
                         tonumber(ARGV[25])
  local over = rg_over_quota(tonumber(redis.call('HGET', KEYS[8], 'total') or '0'),
                             authority_used, adding, tonumber(ARGV[13]), tonumber(ARGV[14]))
  if over then return over end
  redis.call('HINCRBY', KEYS[8], 'total', adding)
  redis.call('HINCRBY', KEYS[8], 'a:' .. ARGV[11], adding)
  redis.call('HINCRBY', KEYS[9], ARGV[11], adding)
  redis.call('PERSIST', KEYS[6])
  redis.call('RPUSH', KEYS[7], ARGV[10])
end
local counted = redis.call('HMGET', KEYS[1], 'instrument', 'status')
for _ = 1, nf do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local recount = redis.call('HMGET', KEYS[1], 'instrument', 'status')
if counted[1] ~= recount[1] or counted[2] ~= recount[2] then
  if counted[1] and counted[2] then
    redis.call('HINCRBY', KEYS[12], counted[1] .. ':' .. counted[2], -1)
  end
  if recount[1] and recount[2] then
    redis.call('HINCRBY', KEYS[12], recount[1] .. ':' .. recount[2], 1)
  end
end
local k = 13
local erased = redis.call('HEXISTS', KEYS[1], 'erased_ms') == 1
for _ = 1, tonumber(ARGV[16]) do
  redis.call('ZREM', KEYS[k], id)
  k = k + 1
end
for _ = 1, tonumber(ARGV[17]) do
  redis.call('ZADD', KEYS[k], cur[2], id)
  k = k + 1
end
for _ = 1, tonumber(ARGV[18]) do
  if not erased then redis.call('ZREM', KEYS[k], id) end
  k = k + 1
end
for _ = 1, tonumber(ARGV[19]) do
  if not erased then redis.call('ZADD', KEYS[k], cur[2], id) end
  k = k + 1
end
for _ = 1, tonumber(ARGV[23]) do
  redis.call('HDEL', KEYS[k], id)
  k = k + 1
end
local nwl = tonumber(ARGV[24])
if nwl > 0 then
  -- The worklist row, as create_request.lua writes it, from the hash as changed.
  local h = redis.call('HMGET', KEYS[1], 'status', 'instrument', 'urgency', 'issuing_state',
                       'requested_state', 'issuing_authority', 'executing_authority',
                       'created_ms', 'next_due_ms')
  for j = 1, 9 do h[j] = h[j] or '' end
  local row = table.concat(h, '\31')
  for _ = 1, nwl do
    if erased then
      redis.call('HDEL', KEYS[k], id)
    else
      redis.call('HSET', KEYS[k], id, row)
    end
    k = k + 1
  end
end
if ARGV[15] ~= '' and not erased then
  local h = redis.call('HMGET', KEYS[1], 'instrument', 'status')
  if string.find(ARGV[15], ',' .. (h[1] or '') .. ':' .. (h[2] or '') .. ',', 1, true) then
    redis.call('ZADD', KEYS[11], ARGV[3], id)
  else
    redis.call('ZREM', KEYS[11], id)
  end
end
for _ = 1, nh do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  i = i + 1
end
while i <= #ARGV do
  redis.call('XADD', KEYS[3], '*', 'ev', ARGV[i])
  i = i + 1
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'pb', ARGV[4]) end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'etag', ARGV[2], 'updated_ms', ARGV[3])
  redis.call('ZADD', KEYS[10], ARGV[3], id)
end
if fp ~= '' then
  redis.call('HSET', KEYS[4], 'fp', fp, 'id', id, 'res', ARGV[7])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
end
if ARGV[8] ~= '' then redis.call('SET', KEYS[5], '1', 'PX', ARGV[8]) end
return {'applied'}
