#!lua flags=no-writes
-- A page of a request's history and its length (RedisRequestStore::HistoryRange).
--
-- KEYS[1]  the history (hist:<id>)
-- ARGV[1]  the first index
-- ARGV[2]  the last index
-- Returns  {length, {events...}}
return {redis.call('LLEN', KEYS[1]), redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])}
