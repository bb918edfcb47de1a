#!lua flags=no-writes
-- Reads subscriptions (redis_subscription_store.cc; the caller found their ids first).
--
-- KEYS[1..]  the subscriptions' hashes
-- ARGV[1..]  their ids, in the order of KEYS
-- Returns    {id, uri, fi, ft, fs, created ms, rotated ms or '', ...}: seven strings per
--            subscription that still exists
local out = {}
for i = 1, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'uri', 'fi', 'ft', 'fs', 'ct', 'rot')
  if h[1] then
    out[#out + 1] = ARGV[i]
    for k = 1, 6 do out[#out + 1] = h[k] or '' end
  end
end
return out
