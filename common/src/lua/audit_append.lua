#!lua
-- Appends authenticated audit entries to a shard's pending stream (audit_log.cc: the
-- ChainedAuditor's group commit), unless the backlog is full (no sealer running): the
-- pending stream must not exhaust Redis's memory. Refused whole when Redis is full.
--
-- KEYS[1]  the shard's pending stream: entries {r: request id, m: entry mac, e: entry}
-- ARGV[1]  the most entries the stream may hold before this append
-- ARGV[2..]  per entry, three arguments: request id, entry mac, encoded entry
-- Returns  the number of entries appended, or -1 when the backlog is full (none appended)
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return -1 end
for i = 2, #ARGV, 3 do
  redis.call('XADD', KEYS[1], '*', 'r', ARGV[i], 'm', ARGV[i + 1], 'e', ARGV[i + 2])
end
return (#ARGV - 1) / 3
