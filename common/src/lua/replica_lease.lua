#!lua flags=allow-oom
-- Takes the lease for a replica, or renews it if that replica holds it (replica_lease.cc).
-- Runs when Redis is full: a lease only replaces its own value.
--
-- KEYS[1]  the lease: a string holding the replica that holds it, with a TTL
-- ARGV[1]  the replica asking
-- ARGV[2]  the lease's time to live, in milliseconds
-- Returns  1 when the replica holds the lease after the call, 0 when another does
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
