#!lua
-- Moves an inbox's acknowledgement pointer forward, never back (redis_inbox_store.cc).
--
-- KEYS[1]  the inbox's acknowledgement pointer: the last entry id acknowledged
-- ARGV[1]  the entry id acknowledged now
-- Returns  1 when the pointer moved, 0 when it already was at or after ARGV[1]
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cm, cs = parse(cur)
  local nm, ns = parse(ARGV[1])
  if nm < cm or (nm == cm and ns <= cs) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
