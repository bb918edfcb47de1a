#!lua
-- Stages one chunk of a document being uploaded (RedisDocumentStore::Stage), unless the
-- bytes staged so far would pass the request's or the uploading authority's document quota.
-- Refused whole by a full Redis: it only grows memory.
--
-- KEYS[1]  the document's chunks (doc:<document id>:data), expiring until committed
-- KEYS[2]  the request's document usage (docbytes:<request id>)
-- KEYS[3]  the shard's per-authority document usage (docbytes:authority)
-- ARGV[1]  the chunk
-- ARGV[2]  the staging time to live, ms
-- ARGV[3]  the uploading authority
-- ARGV[4]  the document's bytes staged so far, this chunk included
-- ARGV[5]  the request's bound, bytes ('0' = none)
-- ARGV[6]  the authority's bound, bytes ('0' = none)
-- ARGV[7]  the authority's committed bytes in the other shards, read just before (so two
--          uploads in different shards may both pass: see RedisDocumentStore)
-- Returns  {'staged'} | {'quota', 'request'|'authority', used}
-- #include document_quota.lua
local authority_used = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0') +
                       tonumber(ARGV[7])
local over = rg_over_quota(tonumber(redis.call('HGET', KEYS[2], 'total') or '0'),
                           authority_used,
                           tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
if over then return over end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'staged'}
