#!lua
-- Ends a chunked upload for its commit (RedisDocumentStore::ClaimUpload): removes its state
-- so that exactly one commit goes on, and only with the bytes the commit verified. Its
-- chunks stay (expiring) for the commit to make visible (mutate_request.lua) or discard.
--
-- KEYS[1]  the upload (upload:<document id>; start_document_upload.lua)
-- ARGV[1]  the calling authority (must own the upload)
-- ARGV[2]  the bytes the commit verified
-- Returns  {'claimed'} | {'missing'} | {'changed'} (a chunk came since: nothing removed)
local up = redis.call('HMGET', KEYS[1], 'owner', 'size')
if not up[1] or up[1] ~= ARGV[1] then return {'missing'} end
if up[2] ~= ARGV[2] then return {'changed'} end
redis.call('DEL', KEYS[1])
return {'claimed'}
