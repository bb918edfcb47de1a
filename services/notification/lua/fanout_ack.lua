#!lua flags=allow-oom
-- Acknowledges and deletes delivered fan-out entries (fanout_worker.cc). Runs when Redis is
-- full: it only frees memory.
--
-- KEYS[1]    the shard's fan-out outbox: a stream with a consumer group
-- ARGV[1]    the consumer group
-- ARGV[2..]  the entry ids
-- Returns    the number of entries deleted
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
return redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
