#!lua
-- Creates a webhook subscription, or answers the one an earlier call with the same request
-- id created (redis_subscription_store.cc). The caller read the idempotency record first
-- and passes the subscription it named; a record changed since is answered 'retry'.
--
-- KEYS[1]  the idempotency record: a hash {fp, id}, with a TTL
-- KEYS[2]  the owner's subscriptions: a set of ids
-- KEYS[3]  the new subscription: a hash
-- KEYS[4]  the subscription the idempotency record named when read (absent: none)
-- ARGV[1]  the fingerprint of what is asked ('' when the call has no request id)
-- ARGV[2]  the new subscription's id
-- ARGV[3]  the endpoint URI
-- ARGV[4]  the filter's instruments, ",1,2," ('' all)
-- ARGV[5]  the filter's event types, ",10,11," ('' all)
-- ARGV[6]  the filter's states, ",DE,FR," ('' all)
-- ARGV[7]  the owner authority
-- ARGV[8]  the owner's state
-- ARGV[9]  now, in ms
-- ARGV[10] the signing secret
-- ARGV[11] how long the idempotency record is kept, in ms
-- ARGV[12] the most subscriptions an owner may have
-- ARGV[13] the id the idempotency record named when read ('' none)
-- Returns  {'created'} | {'limit'} | {'conflict'} | {'gone'} | {'retry'} |
--          {'replayed', id, uri, fi, ft, fs, created ms, secret, rotated ms or ''}
if ARGV[1] ~= '' then
  local e = redis.call('HMGET', KEYS[1], 'fp', 'id')
  if e[1] then
    if e[1] ~= ARGV[1] then return {'conflict'} end
    if e[2] ~= ARGV[13] or not KEYS[4] then return {'retry'} end
    local s = redis.call('HMGET', KEYS[4], 'uri', 'fi', 'ft', 'fs', 'ct', 'sec', 'rot')
    if not s[1] then return {'gone'} end
    return {'replayed', e[2], s[1], s[2], s[3], s[4], s[5], s[6], s[7] or ''}
  end
end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[12]) then return {'limit'} end
redis.call('HSET', KEYS[3], 'owner', ARGV[7], 'ost', ARGV[8], 'uri', ARGV[3], 'fi', ARGV[4],
           'ft', ARGV[5], 'fs', ARGV[6], 'ct', ARGV[9], 'sec', ARGV[10])
redis.call('SADD', KEYS[2], ARGV[2])
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'id', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[11])
end
return {'created'}
