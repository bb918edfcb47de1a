#!lua
-- Receives one event in its request's shard (redis_event_store.cc: ReceiveEvent), once: with
-- its duplicate marker, updates the party record, records "accepted" evidence for every
-- recipient, starts their retrieval timers and appends one entry to the shard's fan-out
-- outbox. A party (issuing, executing, central or notified authority) the party record did
-- not hold before has joined: before the event's own entry it gets one entry per event of
-- the catch-up list (with "accepted" evidence and a retrieval timer), so its inbox reads the
-- running deadlines' earlier events first. The catch-up events' evidence keys come from the
-- caller, who read the list: when a party joins and the list is not what the caller passed,
-- nothing is written and the script answers 'retry' with the list as it is.
--
-- KEYS[1]    the receiver's duplicate marker for the event (EventKeys::Seen), with a TTL
-- KEYS[2]    the request's party record (hash)
-- KEYS[3]    the event's evidence (hash)
-- KEYS[4]    the request's events (zset by accept ms)
-- KEYS[5]    the shard's retrieval timers (zset by due ms)
-- KEYS[6]    the shard's fan-out outbox (stream)
-- KEYS[7]    the request's catch-up list
-- KEYS[8..]  the evidence (hash) of each catch-up item of ARGV[16..], in the same order
-- ARGV[1]    the duplicate marker's retention, ms
-- ARGV[2]    the serialized event
-- ARGV[3]    the event id
-- ARGV[4]    now, ms
-- ARGV[5]    evidence retention, ms
-- ARGV[6]    the retrieval timers' due ms ('0': no timer)
-- ARGV[7]    the event's instrument (number)
-- ARGV[8]    the request id
-- ARGV[9]    extra recipients "id@state,..."
-- ARGV[10]   '1' if the translator is told
-- ARGV[11]   the event type (number)
-- ARGV[12]   catch-up action: 'keep' (a later party must receive the event), 'drop' (the
--            deadline ended: its events are no longer owed) or ''
-- ARGV[13]   the deadline id
-- ARGV[14]   the most items the catch-up list keeps
-- ARGV[15]   n: how many catch-up items follow (the list as the caller read it)
-- ARGV[16..] the n catch-up items "<deadline id>|<event id>|<type>", then the party record
--            updates as field, value pairs
-- Returns    {'duplicate'} (nothing changed) | {'retry', catch-up items...} (nothing
--            changed) | {'ok', recipient count, catch-up deliveries}
if redis.call('EXISTS', KEYS[1]) == 1 then return {'duplicate'} end
local fields = {'iss', 'iss_st', 'exe', 'exe_st', 'cen', 'cen_st', 'tra', 'tra_st', 'req_st',
                'inst', 'ntf', 'ntf_st'}
local old = redis.call('HMGET', KEYS[2], unpack(fields))
local ncatch = tonumber(ARGV[15])
local updates = {}
for i = 16 + ncatch, #ARGV, 2 do updates[ARGV[i]] = ARGV[i + 1] end
local p = {}
for i, f in ipairs(fields) do
  if updates[f] ~= nil then p[i] = updates[f] else p[i] = old[i] end
end
-- The parties that join with this event (old: 1 iss, 3 exe, 5 cen, 11 ntf).
local joined, was = {}, {}
for _, i in ipairs({1, 3, 5, 11}) do if old[i] then was[old[i]] = true end end
for _, i in ipairs({1, 3, 5, 11}) do
  if p[i] and p[i] ~= '' and not was[p[i]] then
    was[p[i]] = true
    joined[#joined + 1] = {p[i], p[i] .. '@' .. (p[i + 1] or '')}
  end
end
local items = {}
if #joined > 0 then
  items = redis.call('LRANGE', KEYS[7], 0, -1)
  local same = #items == ncatch
  for i = 1, #items do
    if not same then break end
    same = items[i] == ARGV[15 + i]
  end
  if not same then
    local answer = {'retry'}
    for _, item in ipairs(items) do answer[#answer + 1] = item end
    return answer
  end
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
for i = 16 + ncatch, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
if #ARGV >= 16 + ncatch then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
local to, seen = {}, {}
local function add(id, st)
  if id and id ~= '' and not seen[id] then
    seen[id] = true
    to[#to + 1] = id .. '@' .. (st or '')
  end
end
add(p[1], p[2])
add(p[3], p[4])
add(p[5], p[6])
add(p[11], p[12])
if ARGV[10] == '1' then add(p[7], p[8]) end
for r in string.gmatch(ARGV[9], '[^,]+') do
  local id, st = string.match(r, '^([^@]*)@?(.*)$')
  add(id, st)
end
local states = ',' .. (p[2] or '') .. ',' .. (p[9] or '') .. ',' .. (p[4] or '') .. ','
local now = tonumber(ARGV[4])
local due = tonumber(ARGV[6])
-- Catch-up of the parties that join with this event.
local caught = 0
if #joined > 0 then
  local recipients = {}
  for _, j in ipairs(joined) do recipients[#recipients + 1] = j[2] end
  recipients = table.concat(recipients, ',')
  for i, item in ipairs(items) do
    local eid, typ = string.match(item, '^[^|]*|([^|]*)|(.*)$')
    local pb = eid and redis.call('HGET', KEYS[7 + i], 'pb')
    if pb then
      for _, j in ipairs(joined) do
        redis.call('HSETNX', KEYS[7 + i], '1|' .. j[1] .. '|', ARGV[4])
        if due > 0 then redis.call('ZADD', KEYS[5], 'NX', due, eid .. '|' .. j[1]) end
      end
      redis.call('XADD', KEYS[6], '*', 'ev', pb, 'to', recipients, 'acc', ARGV[4], 'kind', 'n',
                 'st', states, 'inst', p[10] or '', 'typ', typ)
      caught = caught + 1
    end
  end
end
redis.call('HSET', KEYS[3], 'pb', ARGV[2], 'rq', ARGV[8])
for _, r in ipairs(to) do
  local id = string.match(r, '^([^@]*)')
  redis.call('HSETNX', KEYS[3], '1|' .. id .. '|', ARGV[4])
  if due > 0 then
    redis.call('ZADD', KEYS[5], 'NX', ARGV[6], ARGV[3] .. '|' .. id)
  end
end
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('ZADD', KEYS[4], 'NX', now, ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[5])
if #to > 0 then
  redis.call('XADD', KEYS[6], '*', 'ev', ARGV[2], 'to', table.concat(to, ','), 'acc', ARGV[4],
             'kind', 'n', 'st', states, 'inst', ARGV[7], 'typ', ARGV[11])
end
if ARGV[12] == 'keep' then
  redis.call('RPUSH', KEYS[7], ARGV[13] .. '|' .. ARGV[3] .. '|' .. ARGV[11])
  redis.call('LTRIM', KEYS[7], -tonumber(ARGV[14]), -1)
  redis.call('PEXPIRE', KEYS[7], ARGV[5])
elseif ARGV[12] == 'drop' then
  local prefix = ARGV[13] .. '|'
  for _, item in ipairs(redis.call('LRANGE', KEYS[7], 0, -1)) do
    if string.sub(item, 1, #prefix) == prefix then redis.call('LREM', KEYS[7], 0, item) end
  end
end
return {'ok', #to, caught}
