#!lua flags=no-writes
-- Runs the shared helper document_quota.lua on the values C++ passes (lua_library_test.cc).
--
-- ARGV[1]  the request's bytes used
-- ARGV[2]  the authority's bytes used
-- ARGV[3]  the bytes to add
-- ARGV[4]  the request's bound ('0' = none)
-- ARGV[5]  the authority's bound ('0' = none)
-- Returns  {'quota', 'request'|'authority', used} when over a bound, else {'ok'}
-- #include document_quota.lua
local over = rg_over_quota(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                           tonumber(ARGV[4]), tonumber(ARGV[5]))
return over or {'ok'}
