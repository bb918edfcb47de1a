#!lua flags=no-writes
-- The jobs of a queue listing page (RedisRoutingStore::ListQueue), after queue_page.lua
-- named them: 'retry' when one left its index or moved in it since.
--
-- KEYS[1..]  two per job of ARGV[1..]: job:<id>, the index it was listed from
-- ARGV[1..]  per job: job id, its score in that index
-- Returns  {'retry'} or {'jobs', fields (HGETALL), fields, ...} in ARGV order
local out = {'jobs'}
for i = 1, #ARGV / 2 do
  local jid, score = ARGV[2 * i - 1], ARGV[2 * i]
  local now = redis.call('ZSCORE', KEYS[2 * i], jid)
  if not now or string.format('%.0f', tonumber(now)) ~= score then return {'retry'} end
  out[#out + 1] = redis.call('HGETALL', KEYS[2 * i - 1])
end
return out
