#!lua
-- Claims up to `limit` due timers of one shard for a lease, each with a new fencing token
-- (deadline_store.cc, RedisDeadlineStore::Claim): first claims whose lease ran out (taken
-- over), then timers due by now. A claimed timer leaves the timer set; the commit that
-- fires it (deadline_commit.lua) releases the claim. The caller then reads the claimed
-- timers' deadlines (deadline_read.lua).
--
-- KEYS[1]  the shard's timer set (dl:timers): member "<deadline id>|<what>" by due ms
-- KEYS[2]  the shard's claimed timers by lease expiry ms (dl:claims)
-- KEYS[3]  the shard's claim tokens: member -> "<token>|<due ms>" (dl:claimtok)
-- KEYS[4]  the shard's fencing token counter (dl:fence)
-- ARGV[1]  now, ms
-- ARGV[2]  the lease, ms
-- ARGV[3]  the most timers to claim
-- Returns  {member, token, due ms, takeover '1'/'0'} per claimed timer
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local out = {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, m in ipairs(expired) do
  local old = redis.call('HGET', KEYS[3], m)
  local due = '0'
  if old then due = string.sub(old, string.find(old, '|', 1, true) + 1) end
  local tok = redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[2], now + lease, m)
  redis.call('HSET', KEYS[3], m, tok .. '|' .. due)
  out[#out + 1] = {m, tostring(tok), due, '1'}
end
local left = limit - #expired
if left > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, left)
  for i = 1, #due, 2 do
    local m = due[i]
    local d = due[i + 1]
    redis.call('ZREM', KEYS[1], m)
    local tok = redis.call('INCR', KEYS[4])
    redis.call('ZADD', KEYS[2], now + lease, m)
    redis.call('HSET', KEYS[3], m, tok .. '|' .. d)
    out[#out + 1] = {m, tostring(tok), d, '0'}
  end
end
return out
