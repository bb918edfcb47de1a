#!lua
-- Records the first time one stage of an event's delivery was reached (evidence.cc), only
-- if the event's evidence exists (it was received).
--
-- KEYS[1]  the event's evidence hash: "<stage>|<recipient>|<subscription>" -> ms
-- ARGV[1]  the field of the stage, "<stage>|<recipient>|<subscription or ''>"
-- ARGV[2]  now, in ms
-- ARGV[3]  the evidence retention, in ms
-- Returns  1 when the stage was newly recorded, 0 otherwise
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return n
