#!lua flags=no-writes
-- Reads dead webhook jobs (redis_subscription_store.cc; the caller found them in the
-- shard's dead-letter list first).
--
-- KEYS[1..]  the jobs' hashes
-- Returns    {subscription, event id, request id, recipient, recipient state, attempts,
--            last outcome, ...}: seven strings per job, in the order of KEYS ('' unknown)
local out = {}
for i = 1, #KEYS do
  local j = redis.call('HMGET', KEYS[i], 'sub', 'eid', 'rq', 'to', 'tost', 'att', 'last')
  for k = 1, 7 do out[#out + 1] = j[k] or '' end
end
return out
