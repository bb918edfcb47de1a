#!lua flags=no-writes
-- Reads the delivery evidence of events of one request, with the request's parties
-- (redis_evidence_store.cc; the caller found the events first).
--
-- KEYS[1]    the request's party record (a hash)
-- KEYS[2..]  the events' evidence hashes
-- ARGV[1..]  the event ids, in the order of KEYS[2..]
-- Returns    {issuing, executing, central, translator, notified authority ('' unknown),
--            then event id, field "<stage>|<recipient>|<subscription>", ms triples}
local p = redis.call('HMGET', KEYS[1], 'iss', 'exe', 'cen', 'tra', 'ntf')
local out = {p[1] or '', p[2] or '', p[3] or '', p[4] or '', p[5] or ''}
for i = 2, #KEYS do
  local h = redis.call('HGETALL', KEYS[i])
  for j = 1, #h, 2 do
    if h[j] ~= 'pb' and h[j] ~= 'rq' then
      out[#out + 1] = ARGV[i - 1]
      out[#out + 1] = h[j]
      out[#out + 1] = h[j + 1]
    end
  end
end
return out
