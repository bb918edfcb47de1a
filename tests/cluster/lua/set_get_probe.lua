#!lua
-- Writes a value and reads it back (cluster_redis_client_test.cc): a script that must run
-- on the primary that owns its key's slot.
--
-- KEYS[1]  a key
-- ARGV[1]  the value to write
-- Returns  the value read back
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('GET', KEYS[1])
