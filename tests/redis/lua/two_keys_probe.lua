#!lua
-- Writes both keys it is given (one_node_cluster_test.cc): a one-node cluster refuses it
-- when they are in two slots.
--
-- KEYS[1]  a key
-- KEYS[2]  another key
-- Returns  1
redis.call('SET', KEYS[1], '1')
redis.call('SET', KEYS[2], '1')
return 1
