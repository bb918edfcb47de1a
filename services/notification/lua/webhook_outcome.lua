#!lua flags=allow-oom
-- Records the outcome of one webhook attempt (webhook_dispatcher.cc): success ends the job;
-- a failure retries it at the next due time, or moves it to the dead letters once it used
-- its attempts. Runs when Redis is full, as it did before it had flags: ending a job frees
-- memory, and a claimed job must not stay claimed because Redis is full.
--
-- KEYS[1]  the shard's webhook queue: a zset of jobs by due ms
-- KEYS[2]  the shard's dead letters: a zset of jobs by dead-letter ms
-- KEYS[3]  the job: a hash
-- ARGV[1]  the job's member, "<subscription>/<notification id>"
-- ARGV[2]  '1' when the attempt succeeded, '0' when it failed
-- ARGV[3]  now, in ms
-- ARGV[4]  when to try again after a failure, in ms
-- ARGV[5]  the most attempts
-- ARGV[6]  the attempt's outcome (a code: 'http_500', 'timeout', ...)
-- Returns  'done' | 'retry' | 'dead' | 'gone' (the job no longer exists)
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 'gone'
end
if ARGV[2] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3])
  return 'done'
end
redis.call('HSET', KEYS[3], 'last', ARGV[6])
local att = tonumber(redis.call('HGET', KEYS[3], 'att') or '0')
if att >= tonumber(ARGV[5]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  redis.call('HSET', KEYS[3], 'dead', ARGV[3])
  return 'dead'
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 'retry'
