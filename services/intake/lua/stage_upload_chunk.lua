#!lua
-- Stages one chunk of a chunked upload at its offset (RedisDocumentStore::StageAt), in
-- order: the chunk must start where the bytes received so far end. Resending the last chunk
-- (same offset, same bytes) changes nothing, so a retried chunk is harmless. Refused when the
-- bytes would pass max-document-size, or the request's or the uploading authority's
-- committed document bytes plus this upload's would pass a quota (nothing is charged before
-- the commit). Each chunk restarts the idle timeout of the upload and its bytes. Refused
-- whole by a full Redis: it only grows memory.
--
-- KEYS[1]  the upload (upload:<document id>; start_document_upload.lua)
-- KEYS[2]  the document's chunks (doc:<document id>:data)
-- KEYS[3]  the request's document usage (docbytes:<request id>)
-- KEYS[4]  the shard's per-authority document usage (docbytes:authority)
-- ARGV[1]  the calling authority (must own the upload)
-- ARGV[2]  the chunk's offset
-- ARGV[3]  the chunk
-- ARGV[4]  the idle timeout, ms
-- ARGV[5]  the largest document, bytes ('0' = none)
-- ARGV[6]  the request's bound, bytes ('0' = none)
-- ARGV[7]  the authority's bound, bytes ('0' = none)
-- ARGV[8]  the authority's committed bytes in the other shards, read just before (so two
--          uploads in different shards may both pass: see RedisDocumentStore)
-- Returns  {'staged', received} | {'missing'} | {'offset', received} |
--          {'toolarge', received} | {'quota', 'request'|'authority', used}
-- #include document_quota.lua
local up = redis.call('HMGET', KEYS[1], 'owner', 'size', 'last')
if not up[1] or up[1] ~= ARGV[1] then return {'missing'} end
local size = tonumber(up[2])
local offset = tonumber(ARGV[2])
local adding = string.len(ARGV[3])
local function touch()
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
if offset ~= size then
  if offset == tonumber(up[3]) and offset + adding == size and
      redis.call('LINDEX', KEYS[2], -1) == ARGV[3] then
    touch()
    return {'staged', tostring(size)}
  end
  return {'offset', tostring(size)}
end
local total = size + adding
if ARGV[5] ~= '0' and total > tonumber(ARGV[5]) then return {'toolarge', tostring(size)} end
local authority_used = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0') +
                       tonumber(ARGV[8])
local over = rg_over_quota(tonumber(redis.call('HGET', KEYS[3], 'total') or '0'),
                           authority_used,
                           total, tonumber(ARGV[6]), tonumber(ARGV[7]))
if over then return over end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'size', tostring(total), 'last', ARGV[2])
touch()
return {'staged', tostring(total)}
