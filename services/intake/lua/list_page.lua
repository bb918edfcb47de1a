#!lua flags=no-writes
-- One shard's share of a list page (RedisRequestStore::List): C++ read the candidates from
-- the shard's index, newest first, after the cursor; this keeps the ones that match the
-- filters, in order, until `limit` match.
--
-- KEYS[1..]  the candidates' hashes (req:<id>), in index order
-- ARGV[1]    limit: how many matches to stop at
-- ARGV[2]    status ('' = any)
-- ARGV[3]    instrument ('' = any)
-- ARGV[4]    issuing state ('' = any)
-- ARGV[5]    requested state ('' = any)
-- ARGV[6]    urgency ('' = any)
-- ARGV[7]    created from, ms, inclusive ('' = any; checked on the hash, for indexes not
--            ordered by creation)
-- ARGV[8]    created to, ms, exclusive ('' = any)
-- ARGV[9]    '1' when need-to-know scoped: a request matches only if in the caller's reach
-- ARGV[10]   scope authority id ('' = none)
-- ARGV[11]   scope central state ('' = none)
-- Returns    {examined, then per match: its position in KEYS, pb, status, etag, updated_ms,
--            nd (the next deadline; '' = none)}
local limit = tonumber(ARGV[1])
local cfrom, cto = tonumber(ARGV[7]), tonumber(ARGV[8])
local out = {0}
local found = 0
for i = 1, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'pb', 'status', 'instrument', 'issuing_state',
                       'requested_state', 'etag', 'updated_ms', 'urgency', 'created_ms',
                       'issuing_authority', 'executing_authority', 'nd')
  local created = tonumber(h[9])
  local reach = ARGV[9] ~= '1'
    or (ARGV[10] ~= '' and (h[10] == ARGV[10] or h[11] == ARGV[10]))
    or (ARGV[11] ~= '' and (h[4] == ARGV[11] or h[5] == ARGV[11]))
  if h[1] and reach and (ARGV[2] == '' or h[2] == ARGV[2]) and (ARGV[3] == '' or h[3] == ARGV[3])
     and (ARGV[4] == '' or h[4] == ARGV[4]) and (ARGV[5] == '' or h[5] == ARGV[5])
     and (ARGV[6] == '' or h[8] == ARGV[6])
     and (cfrom == nil or (created ~= nil and created >= cfrom))
     and (cto == nil or (created ~= nil and created < cto)) then
    out[#out + 1] = i
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
    out[#out + 1] = h[6]
    out[#out + 1] = h[7]
    out[#out + 1] = h[12] or ''
    found = found + 1
  end
  out[1] = i
  if found >= limit then return out end
end
return out
