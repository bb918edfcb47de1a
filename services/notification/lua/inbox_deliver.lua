#!lua
-- Delivers one notification into an authority's inbox and enqueues the webhook jobs of the
-- owner's subscriptions whose filter matches (redis_inbox_store.cc; the fan-out worker
-- filters in C++ and passes the matched subscriptions). The caller names the owner's
-- subscriptions as it knows them; a set changed since is answered 'retry' with the current
-- ids, before anything is written (a subscription's filter never changes once created, so
-- the ids alone say whether the caller's filtering still holds).
--
-- KEYS[1]    the inbox: a stream of notifications
-- KEYS[2]    the inbox's floor: the id of the newest entry ever trimmed from it
-- KEYS[3]    this notification's marker in the inbox (it is in: a redelivery adds nothing)
-- KEYS[4]    the owner's subscriptions: a set of ids
-- KEYS[5]    the shard's webhook queue: a zset of "<subscription>/<notification id>"
-- KEYS[6]    the marker of the batch's previous delivery to this inbox (when ARGV[14] is '1')
-- KEYS[7..]  the webhook jobs (hashes) of the matched subscriptions, in the order of ARGV[17..]
-- ARGV[1]    the event, serialized
-- ARGV[2]    when it was accepted, in ms
-- ARGV[3]    the kind: 'n' notification, 'r' reannouncement (no webhooks), 'x' escalation
-- ARGV[4]    now, in ms
-- ARGV[5]    the oldest entry id to keep, "<ms>-0" (older entries are trimmed)
-- ARGV[6]    the most entries to keep, this one included
-- ARGV[7]    how long the marker is kept, in ms
-- ARGV[8]    the request's states, ",DE,FR,"
-- ARGV[9]    the notification id (the webhook job's name after the subscription)
-- ARGV[10]   the request id
-- ARGV[11]   the recipient authority
-- ARGV[12]   the recipient's state
-- ARGV[13]   the event id
-- ARGV[14]   '1' when this delivery waits for KEYS[6], else '0'
-- ARGV[15]   the owner's subscription ids as the caller knows them, sorted, ','-joined
-- ARGV[16]   the pub/sub channel every append is published on (Keys::InboxAppendedChannel: a
--            channel, not a key; Subscribe streams of every replica wake on it)
-- ARGV[17..] the matched subscriptions' ids
-- Returns    {'blocked'} | {'duplicate'} | {'retry', current subscription id...} |
--            {'ok', entry id, webhook jobs enqueued (a decimal string)}
-- #include stream_trim.lua
if ARGV[14] == '1' and redis.call('EXISTS', KEYS[6]) == 0 then return {'blocked'} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'duplicate'} end
local webhooks = ARGV[3] ~= 'r'
if webhooks then
  local current = redis.call('SMEMBERS', KEYS[4])
  table.sort(current)
  if table.concat(current, ',') ~= ARGV[15] then
    table.insert(current, 1, 'retry')
    return current
  end
end

-- The trim (as inbox_open.lua trims), before the entry is added: by age, then by length to
-- leave room for it; the newest entry removed becomes the floor.
rg_trim_stream(KEYS[1], KEYS[2], ARGV[5], tonumber(ARGV[6]) - 1)

local fields = {'ev', ARGV[1], 'acc', ARGV[2], 'kind', ARGV[3], 'rq', ARGV[10], 'eid', ARGV[13],
                'to', ARGV[11], 'tost', ARGV[12], 'st', ARGV[8]}
-- Entry ids follow the service clock (so age trimming and ids agree); if the clock is
-- behind the stream's last id, Redis picks the next id itself.
local id = redis.pcall('XADD', KEYS[1], ARGV[4] .. '-*', unpack(fields))
if type(id) == 'table' and id.err then id = redis.call('XADD', KEYS[1], '*', unpack(fields)) end

local jobs = 0
if webhooks then
  for i = 17, #ARGV do
    local sid = ARGV[i]
    local job = KEYS[i - 10]
    if redis.call('EXISTS', job) == 0 then
      local member = sid .. '/' .. ARGV[9]
      redis.call('HSET', job, 'sub', sid, 'ev', ARGV[1], 'att', 0, 'acc', ARGV[2],
                 'rq', ARGV[10], 'eid', ARGV[13], 'to', ARGV[11], 'tost', ARGV[12])
      redis.call('ZADD', KEYS[5], ARGV[4], member)
      jobs = jobs + 1
    end
  end
end
-- The marker last: a script failing before it (a Redis script is not rolled back) must
-- leave no marker that would make its retry a "duplicate".
redis.call('SET', KEYS[3], '1', 'PX', ARGV[7])
-- Wakes the inbox's streams on every replica: "<entry id> <inbox key>" (the channel names no
-- authority). Published with the commit, so no append goes unannounced while Redis is up.
redis.call('PUBLISH', ARGV[16], id .. ' ' .. KEYS[1])
return {'ok', id, tostring(jobs)}
