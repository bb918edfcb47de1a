#!lua
-- Writes both keys it is given (cluster_redis_client_test.cc): the cluster client refuses
-- it when they are in two slots, before sending it.
--
-- KEYS[1]  a key
-- KEYS[2]  another key
-- Returns  1
redis.call('SET', KEYS[1], '1')
redis.call('SET', KEYS[2], '1')
return 1
