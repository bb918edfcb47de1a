-- Whether adding a document's bytes passes a document quota (DocumentQuota,
-- services/intake/redis_document_store.h): shared by intake's staging and commit scripts,
-- which read the usage themselves (the request's usage hash's 'total', the authority's
-- field of the authorities' usage hash) and pass it. A bound of 0 is no bound. Returns
-- {'quota', 'request'|'authority', used} when the bytes would pass a bound, else nil.
-- A script includes it with the line
--   -- #include document_quota.lua
local function rg_over_quota(request_used, authority_used, adding, request_bound,
                             authority_bound)
  if request_bound ~= 0 and request_used + adding > request_bound then
    return {'quota', 'request', tostring(request_used)}
  end
  if authority_bound ~= 0 and authority_used + adding > authority_bound then
    return {'quota', 'authority', tostring(authority_used)}
  end
  return nil
end
