#!lua
-- Opens a chunked upload (RedisDocumentStore::StartUpload): its state, expiring unless a
-- chunk or the commit comes within the idle timeout. Refused whole by a full Redis: it only
-- grows memory.
--
-- KEYS[1]  the upload (upload:<document id>), a hash: owner, request, doc, ikey, ifp, size,
--          last (the offset of the last chunk, -1 before the first)
-- ARGV[1]  the owning authority
-- ARGV[2]  the request id
-- ARGV[3]  the document's metadata (serialized Document)
-- ARGV[4]  the idempotency key ('' = none)
-- ARGV[5]  its fingerprint
-- ARGV[6]  the idle timeout, ms
-- Returns  {'started'}
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'request', ARGV[2], 'doc', ARGV[3], 'ikey', ARGV[4],
           'ifp', ARGV[5], 'size', '0', 'last', '-1')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {'started'}
