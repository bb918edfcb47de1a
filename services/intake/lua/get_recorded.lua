#!lua
-- Reads a request on a caller's behalf and, when the caller's scope reaches it, writes the
-- read's audit entry in the same step (RedisRequestStore::GetRecorded). Refused whole by a
-- full Redis: the entry grows memory, and a read that must be audited is not answered
-- unaudited.
--
-- KEYS[1]  the request's hash (req:<id>)
-- KEYS[2]  the request shard's pending audit stream
-- ARGV[1]  '1' when every request is in scope
-- ARGV[2]  scope authority id ('' = none)
-- ARGV[3]  scope central state ('' = none)
-- ARGV[4]  most entries the pending stream may hold
-- ARGV[5]  the request id (the entry's r)
-- ARGV[6]  the entry's mac (m)
-- ARGV[7]  the entry (e)
-- Returns  {} when there is no such request, else {pb, status, etag, updated_ms, recorded,
--          nd} (recorded 1 when the entry was written, else 0; nd the next deadline, '' =
--          none); the reach rule is list_page's
local h = redis.call('HMGET', KEYS[1], 'pb', 'status', 'etag', 'updated_ms',
                     'issuing_authority', 'executing_authority', 'issuing_state',
                     'requested_state', 'nd')
if not h[1] then return {} end
local reach = ARGV[1] == '1'
  or (ARGV[2] ~= '' and (h[5] == ARGV[2] or h[6] == ARGV[2]))
  or (ARGV[3] ~= '' and (h[7] == ARGV[3] or h[8] == ARGV[3]))
local recorded = 0
if reach and redis.call('XLEN', KEYS[2]) < tonumber(ARGV[4]) then
  redis.call('XADD', KEYS[2], '*', 'r', ARGV[5], 'm', ARGV[6], 'e', ARGV[7])
  recorded = 1
end
return {h[1], h[2], h[3], h[4], recorded, h[9] or ''}
