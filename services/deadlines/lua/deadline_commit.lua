#!lua
-- Writes deadlines of one shard, all or none, with their timers, indexes, counts and
-- events (deadline_store.cc, RedisDeadlineStore::Commit). A write is new (expected version
-- '') or replaces the stored version it names; its timer is replaced by the one given.
-- A timer fire passes its claim: the commit happens only while that claim still holds its
-- fencing token, and releases it. A received event passes its duplicate marker
-- (ReceiverScript's): a repeat answers {'duplicate'}; a refusal removes the marker again, so
-- the event is handled when it is delivered again.
--
-- KEYS[1]  the shard's timer set (dl:timers)
-- KEYS[2]  the shard's claimed timers by lease expiry (dl:claims)
-- KEYS[3]  the shard's claim tokens: member -> "<token>|<due ms>" (dl:claimtok)
-- KEYS[4]  the shard's outbox stream (outbox:deadlines)
-- KEYS[5]  the shard's open deadlines by due time (dl:open)
-- KEYS[6]  the shard's counts: open:<instrument>, overdue (dl:stats)
-- KEYS[7]  the event's duplicate marker (untouched when ARGV[1] is '')
-- KEYS[8]  the request's parties hash (dl:parties:<request>; untouched when ARGV[6..10]
--          are all '')
-- KEYS[9..]  per write, 5 keys: the deadline hash (dl:d:<id>), its request's index
--          (dl:byreq:<request>), its request's event sequence (dl:seq:<request>), the index of
--          the authority the stored deadline is indexed under (dl:byauth:<stored>), the
--          index of the authority the written deadline is indexed under (dl:byauth:<new>)
-- ARGV[1]  the duplicate marker's retention in ms; '' when not handling a received event
-- ARGV[2]  the claimed timer member being fired; '' for none
-- ARGV[3]  that claim's fencing token
-- ARGV[4]  the idempotency key; '' for none (a repeat under it answers {'replayed'})
-- ARGV[5]  the number of writes n
-- ARGV[6..10]  the request's parties to record: issuing authority, issuing state, executing
--          authority, requested state, notified authority ('' = not written)
-- ARGV[11..]  per write, 13 arguments: id, expected version ('' new), new version,
--          serialized Deadline, state number, due ms, timer member ('' none), timer score,
--          request id, authority indexed under ('' unless open), instrument number, the
--          authority the stored deadline is indexed under as the caller read it, the
--          serialized Event without its sequence ('' none)
-- Returns  {'ok'}, {'duplicate'}, {'fenced'}, {'replayed'}, {'exists', id} or
--          {'conflict', id} (the stored version, or the authority it is indexed under, is
--          not the one expected)
-- #include event_sequence.lua
local n = tonumber(ARGV[5])
local claim = ARGV[2]
local idem = ARGV[4]
if ARGV[1] ~= '' and not redis.call('SET', KEYS[7], '1', 'NX', 'PX', ARGV[1]) then
  return {'duplicate'}
end
-- A refusal undoes the duplicate marker, so the event is handled on retry.
local function refuse(reply)
  if ARGV[1] ~= '' then redis.call('DEL', KEYS[7]) end
  return reply
end
if claim ~= '' then
  local t = redis.call('HGET', KEYS[3], claim)
  if not t then return refuse({'fenced'}) end
  local bar = string.find(t, '|', 1, true)
  if string.sub(t, 1, bar - 1) ~= ARGV[3] then return refuse({'fenced'}) end
end
for i = 0, n - 1 do
  local b = 11 + i * 13
  local k = 9 + i * 5
  local cur = redis.call('HMGET', KEYS[k], 'ver', 'authority', 'idem:' .. idem)
  if idem ~= '' and cur[3] then return refuse({'replayed'}) end
  if ARGV[b + 1] == '' then
    if cur[1] then return refuse({'exists', ARGV[b]}) end
  elseif cur[1] ~= ARGV[b + 1] or (cur[2] or '') ~= ARGV[b + 11] then
    return refuse({'conflict', ARGV[b]})
  end
end
for i = 0, n - 1 do
  local b = 11 + i * 13
  local k = 9 + i * 5
  local id = ARGV[b]
  local old = redis.call('HMGET', KEYS[k], 'timers', 'open', 'instrument', 'authority', 'state')
  local member = ARGV[b + 6]
  local score = tonumber(ARGV[b + 7])
  -- Timers that went away are dropped, claimed or not (a claimant then finds itself fenced).
  -- A claimed timer that keeps its due time keeps its claim, so its claimant still fires it.
  local keep_claim = false
  if old[1] then
    for m in string.gmatch(old[1], '%S+') do
      -- The committing claim's own timer is out of the timer set (claimed) and released
      -- below.
      if m ~= claim then
        local claimed = redis.call('HGET', KEYS[3], m)
        local due_of_claim = nil
        if claimed then
          due_of_claim = tonumber(string.sub(claimed, string.find(claimed, '|', 1, true) + 1))
        end
        if m == member and claimed and due_of_claim == score then
          keep_claim = true
        else
          redis.call('ZREM', KEYS[1], m)
          redis.call('ZREM', KEYS[2], m)
          redis.call('HDEL', KEYS[3], m)
        end
      end
    end
  end
  local state = ARGV[b + 4]
  local due = ARGV[b + 5]
  local request = ARGV[b + 8]
  local authority = ARGV[b + 9]
  local instrument = ARGV[b + 10]
  local open = (state == '1' or state == '2' or state == '3')
  -- Open before and after in the same indexes and counts: only the scores move.
  local same_open = open and old[2] == '1' and old[3] == instrument and
                    (old[4] or '') == authority
  if old[2] == '1' and not same_open then
    redis.call('HINCRBY', KEYS[6], 'open:' .. old[3], -1)
    redis.call('ZREM', KEYS[5], id)
    if old[4] and old[4] ~= '' then redis.call('ZREM', KEYS[k + 3], id) end
  end
  if old[5] == '3' and state ~= '3' then redis.call('HINCRBY', KEYS[6], 'overdue', -1) end
  if member ~= '' and not keep_claim then redis.call('ZADD', KEYS[1], ARGV[b + 7], member) end
  redis.call('HSET', KEYS[k], 'pb', ARGV[b + 3], 'ver', ARGV[b + 2], 'state', state,
             'timers', member, 'open', open and '1' or '0',
             'instrument', instrument, 'authority', authority, 'request', request)
  redis.call('ZADD', KEYS[k + 1], due, id)
  if open then
    if not same_open then redis.call('HINCRBY', KEYS[6], 'open:' .. instrument, 1) end
    redis.call('ZADD', KEYS[5], due, id)
    if authority ~= '' then redis.call('ZADD', KEYS[k + 4], due, id) end
  end
  if state == '3' and old[5] ~= '3' then redis.call('HINCRBY', KEYS[6], 'overdue', 1) end
  if idem ~= '' then redis.call('HSET', KEYS[k], 'idem:' .. idem, '1') end
  if ARGV[b + 12] ~= '' then
    local seq = redis.call('INCR', KEYS[k + 2])
    redis.call('XADD', KEYS[4], '*', 'ev', rg_append_sequence(ARGV[b + 12], seq))
  end
end
if claim ~= '' then
  redis.call('ZREM', KEYS[2], claim)
  redis.call('HDEL', KEYS[3], claim)
end
local parties = {'ia', 'is', 'ea', 'rs', 'na'}
for j = 1, 5 do
  if ARGV[5 + j] ~= '' then redis.call('HSET', KEYS[8], parties[j], ARGV[5 + j]) end
end
return {'ok'}
