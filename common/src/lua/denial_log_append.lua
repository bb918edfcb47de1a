#!lua
-- Appends a denial record to a caller's stream (denial_log.cc) with the record's time (ms)
-- as its id; when a record of a later time is already there (another replica's clock ran
-- ahead), Redis picks the id. Then the stream lives `retention` after its newest record.
--
-- KEYS[1]  the caller's denial stream
-- ARGV[1]  the record's time, in ms since 1970 (the stream id's first part)
-- ARGV[2]  the stream's approximate cap (XADD MAXLEN ~)
-- ARGV[3]  the retention, in milliseconds
-- ARGV[4..]  the record: field, value, field, value...
-- Returns  1
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[1] .. '-*',
                          unpack(fields))
if type(added) == 'table' and added.err then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
