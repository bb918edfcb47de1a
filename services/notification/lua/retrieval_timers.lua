#!lua
-- Runs due retrieval timers of one shard (redis_fanout_store.cc: RunRetrievalTimers). A
-- timer "<event id>|<recipient>" whose recipient has not retrieved the event re-announces it
-- (a fan-out entry of kind 'r', evidence stage 4) and waits the escalation time; if it is
-- still not retrieved then, a notice goes to another party of the request (kind 'x',
-- evidence stage 5). The caller read the due timers and each event's request id, and passes
-- the keys they name: a timer no longer due, or whose event's request id is not what the
-- caller read, is left alone (the next run reads it again).
--
-- KEYS[1]    the shard's retrieval timers (zset by due ms)
-- KEYS[2]    the shard's fan-out outbox (stream)
-- KEYS[3..]  per timer of ARGV[3..], two keys: its event's evidence (hash), the party record
--            (hash) of the request the caller read from that evidence
-- ARGV[1]    now, ms
-- ARGV[2]    the escalation time, ms
-- ARGV[3..]  per timer, two values: the timer "<event id>|<recipient>", the request id the
--            caller read from the event's evidence ('' for none)
-- Returns    {the number of timers handled, the due ms of the shard's earliest timer left
--            ('' if none)}: the fan-out sleeps until then (issue 19)
local handled = 0
local now = tonumber(ARGV[1])
for t = 0, (#ARGV - 2) / 2 - 1 do
  local m, rq = ARGV[3 + 2 * t], ARGV[4 + 2 * t]
  local score = redis.call('ZSCORE', KEYS[1], m)
  local eid, who = string.match(m, '^([^|]*)|(.*)$')
  local h = who and redis.call('HMGET', KEYS[3 + 2 * t], '3|' .. who .. '|', '4|' .. who .. '|',
                               '5|' .. who .. '|', 'pb', 'rq')
  if score and tonumber(score) <= now and h and (h[5] or '') == rq then
    handled = handled + 1
    if h[1] or not h[4] then
      redis.call('ZREM', KEYS[1], m)
    elseif not h[2] then
      redis.call('HSET', KEYS[3 + 2 * t], '4|' .. who .. '|', ARGV[1])
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), m)
      redis.call('XADD', KEYS[2], '*', 'ev', h[4], 'to', who .. '@', 'acc', ARGV[1], 'kind', 'r',
                 'st', '', 'inst', '', 'typ', '')
    else
      redis.call('ZREM', KEYS[1], m)
      if not h[3] then
        redis.call('HSET', KEYS[3 + 2 * t], '5|' .. who .. '|', ARGV[1])
        local p = redis.call('HMGET', KEYS[4 + 2 * t], 'cen', 'cen_st', 'iss', 'iss_st', 'exe',
                             'exe_st')
        local target = nil
        for i = 1, 5, 2 do
          if not target and p[i] and p[i] ~= '' and p[i] ~= who then
            target = p[i] .. '@' .. (p[i + 1] or '')
          end
        end
        if target then
          redis.call('XADD', KEYS[2], '*', 'ev', h[4], 'to', target, 'acc', ARGV[1], 'kind', 'x',
                     'about', who, 'st', '', 'inst', '', 'typ', '92')
        end
      end
    end
  elseif not who then
    redis.call('ZREM', KEYS[1], m)
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {handled, first[2] or ''}
