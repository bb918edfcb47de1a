#!lua flags=no-writes
-- The jobs of one request (RedisRoutingStore::ListJobsOfRequest). C++ read the request's job
-- ids first (each job is a key); 'retry' when the set changed since.
--
-- KEYS[1]  jobs:<request>, the set of the request's job ids
-- KEYS[2..]  job:<id> of each id of ARGV[1..]
-- ARGV[1..]  the job ids
-- Returns  {'retry'} or {'jobs', id, fields (HGETALL), id, fields, ...}
if redis.call('SCARD', KEYS[1]) ~= #ARGV then return {'retry'} end
local out = {'jobs'}
for i = 1, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then return {'retry'} end
  out[#out + 1] = ARGV[i]
  out[#out + 1] = redis.call('HGETALL', KEYS[1 + i])
end
return out
