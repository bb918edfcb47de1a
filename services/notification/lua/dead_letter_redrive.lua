#!lua
-- Queues a dead webhook job for delivery again, now, with its attempts reset
-- (redis_subscription_store.cc).
--
-- KEYS[1]  the shard's dead letters: a zset of jobs by dead-letter ms
-- KEYS[2]  the shard's webhook queue: a zset of jobs by due ms
-- KEYS[3]  the job: a hash
-- ARGV[1]  the job's member, "<subscription>/<notification id>"
-- ARGV[2]  now, in ms
-- ARGV[3]  the recipient it must be for ('' any: an operator)
-- Returns  'ok' | 'absent'
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 'absent' end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[3], 'to') ~= ARGV[3] then return 'absent' end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], 'att', 0)
redis.call('HDEL', KEYS[3], 'dead')
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 'ok'
