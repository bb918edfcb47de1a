#!lua flags=no-writes
-- Reads a request to compute a change on, and the change's idempotency record
-- (RedisRequestStore::Load).
--
-- KEYS[1]  the request's hash (req:<id>)
-- KEYS[2]  the idempotency record (idem:- when there is no key)
-- ARGV[1]  the idempotency fingerprint ('' = none)
-- Returns  {'found', pb, status, etag, updated_ms, nd (the next deadline; '' = none)} | {'replayed', result} | {'conflict'} |
--          {'missing'}
if ARGV[1] ~= '' then
  local e = redis.call('HMGET', KEYS[2], 'fp', 'res')
  if e[1] then
    if e[1] ~= ARGV[1] or not e[2] then return {'conflict'} end
    return {'replayed', e[2]}
  end
end
local r = redis.call('HMGET', KEYS[1], 'pb', 'status', 'etag', 'updated_ms', 'nd')
if not r[1] then return {'missing'} end
return {'found', r[1], r[2], r[3], r[4], r[5] or ''}
