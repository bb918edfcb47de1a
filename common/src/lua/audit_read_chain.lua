#!lua flags=no-writes
-- Reads a request's chain head, its anchor and a page of its audit chain in one atomic
-- step (audit_log.cc: verification, listing, retention). The page starts at the element
-- whose sequence is ARGV[2], located from the first element's sequence, so retention
-- trimming the front between pages does not shift it.
--
-- KEYS[1]  the request's chain: a list of sealed entries, oldest first, each starting
--          "<length>:<sequence>"
-- KEYS[2]  the shard's chain heads: a hash request id -> "sequence mac"
-- KEYS[3]  the shard's anchors: a hash request id -> anchor (after retention)
-- ARGV[1]  the request id
-- ARGV[2]  the sequence to start from (0: the oldest kept)
-- ARGV[3]  the most elements to read
-- Returns  {head or nil, anchor or nil, elements}
local head = redis.call('HGET', KEYS[2], ARGV[1])
local anchor = redis.call('HGET', KEYS[3], ARGV[1])
local first = redis.call('LINDEX', KEYS[1], 0)
if not first then return {head, anchor, {}} end
local len, at = string.match(first, '^(%d+):()')
local seq0 = nil
if len then seq0 = tonumber(string.sub(first, at, at + tonumber(len) - 1)) end
local want = tonumber(ARGV[2])
local idx = 0
if seq0 and want > seq0 then idx = want - seq0 end
local n = tonumber(ARGV[3])
return {head, anchor, redis.call('LRANGE', KEYS[1], idx, idx + n - 1)}
