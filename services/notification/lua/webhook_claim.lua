#!lua
-- Claims due webhook jobs of one shard (webhook_dispatcher.cc): pushes each one's due time
-- out by a lease, so other replicas do not take it meanwhile, and counts the attempt. A job
-- whose record or subscription is gone is dropped. The caller found the due jobs first; a
-- job no longer due (another replica claimed it meanwhile) is skipped.
--
-- KEYS[1]    the shard's webhook queue: a zset of jobs by due ms
-- KEYS[2..]  per job, two keys: the job's hash, then its subscription's hash
-- ARGV[1]    now, in ms
-- ARGV[2]    the lease, in ms
-- ARGV[3..]  the jobs' members, "<subscription>/<notification id>", in the order of KEYS
-- Returns    per claimed job: member, event bytes, attempt (after this claim), accept ms,
--            request id, event id, recipient, endpoint URI, secret, previous secret ('' none),
--            previous secret's expiry ms ('0' none)
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #KEYS, 2 do
  local m = ARGV[i / 2 + 2]
  local due = redis.call('ZSCORE', KEYS[1], m)
  if due and tonumber(due) <= now then
    local j = redis.call('HMGET', KEYS[i], 'ev', 'acc', 'rq', 'eid', 'to')
    local s = redis.call('HMGET', KEYS[i + 1], 'uri', 'sec', 'osec', 'oexp')
    if not j[1] or not s[1] then
      redis.call('ZREM', KEYS[1], m)
      redis.call('DEL', KEYS[i])
    else
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), m)
      local att = redis.call('HINCRBY', KEYS[i], 'att', 1)
      local row = {m, j[1], att, j[2] or '0', j[3] or '', j[4] or '', j[5] or '', s[1],
                   s[2] or '', s[3] or '', s[4] or '0'}
      for _, v in ipairs(row) do out[#out + 1] = v end
    end
  end
end
return out
