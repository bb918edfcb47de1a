#!lua
-- Writes the readiness probe key (redis_readiness.cc): through EVALSHA like every multi-key
-- change, so a script cache that is gone, a Redis that refuses writes or loads its data, or
-- one that stalls, fails the probe as it fails the calls. Refused when Redis is full, as the
-- calls' writes are.
--
-- KEYS[1]  the probe key: a string with a TTL
-- ARGV[1]  the value written
-- ARGV[2]  its time to live, in milliseconds
-- Returns  1
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
