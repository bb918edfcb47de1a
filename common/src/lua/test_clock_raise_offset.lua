#!lua
-- Raises the shared test clock's offset to a wanted value unless it is already larger
-- (test_clock.cc: SetTime never moves the clock backwards).
--
-- KEYS[1]  the offset: a string holding microseconds, absent meaning 0
-- ARGV[1]  the offset wanted, in microseconds
-- Returns  {1, offset} when raised to ARGV[1], {0, offset} when the offset held (a decimal
--          string) is already larger and stays
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted < current then return {0, tostring(current)} end
redis.call('SET', KEYS[1], ARGV[1])
return {1, ARGV[1]}
