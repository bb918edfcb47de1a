#!lua
-- Writes its declared key, then a key it was not given (one_node_cluster_test.cc). The
-- lint forbids this in the services' scripts; this probe shows what Redis itself catches.
--
-- KEYS[1]  the declared key
-- ARGV[1]  the undeclared key
-- Returns  1
redis.call('SET', KEYS[1], '1')
redis.call('SET', ARGV[1], '1')
return 1
