#!lua flags=no-writes
-- One shard's part of a translator's queue listing (RedisRoutingStore::ListQueue): the first
-- `need` members after a cursor, in (score, id) order, of some queue indexes (the claimable
-- queues of the pairs asked for, or the holder's held index). Bounded work: each index is
-- entered by rank (ZCOUNT, then a binary search among members of equal score, O(log n)
-- ZRANGE calls) and read for at most `need` members.
--
-- KEYS[1..]  the indexes (sorted sets of job ids by queue score)
-- ARGV[1]  need: how many members at most
-- ARGV[2]  cursor score ('' from the start)
-- ARGV[3]  cursor job id
-- ARGV[4]  R, the number of score ranges
-- ARGV[5..]  R (low, high) score pairs in ascending order
-- Returns  {id, score, index number (1-based), id, score, index number, ...}, at most
--          `need` entries in (score, id) order
local need, cs, cj = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local ranges = {}
for r = 1, tonumber(ARGV[4]) do ranges[r] = {ARGV[3 + 2 * r], ARGV[4 + 2 * r]} end
-- Byte order, as Redis orders members of equal score (Lua's '<' follows the locale).
local function bytes_lt(a, b)
  local n = math.min(#a, #b)
  for k = 1, n do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local found = {}
for k = 1, #KEYS do
  -- First rank strictly after (cs, cj) in (score, member) order.
  local after = 0
  if cs ~= '' then
    local lo = redis.call('ZCOUNT', KEYS[k], '-inf', '(' .. cs)
    local hi = redis.call('ZCOUNT', KEYS[k], '-inf', cs)
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      local m = redis.call('ZRANGE', KEYS[k], mid, mid)[1]
      if not bytes_lt(cj, m) then lo = mid + 1 else hi = mid end
    end
    after = lo
  end
  local got = 0
  for _, r in ipairs(ranges) do
    if got >= need then break end
    local start = math.max(after, redis.call('ZCOUNT', KEYS[k], '-inf', '(' .. r[1]))
    local stop = redis.call('ZCOUNT', KEYS[k], '-inf', r[2])
    while got < need and start < stop do
      local last = math.min(stop, start + need) - 1
      local page = redis.call('ZRANGE', KEYS[k], start, last, 'WITHSCORES')
      for j = 1, #page, 2 do
        if got < need then
          found[#found + 1] = {page[j], page[j + 1], k}
          got = got + 1
        end
      end
      start = last + 1
    end
  end
end
table.sort(found, function(a, b)
  local sa, sb = tonumber(a[2]), tonumber(b[2])
  if sa ~= sb then return sa < sb end
  return bytes_lt(a[1], b[1])
end)
local out = {}
for k = 1, math.min(#found, need) do
  out[#out + 1] = found[k][1]
  out[#out + 1] = string.format('%.0f', tonumber(found[k][2]))
  out[#out + 1] = found[k][3]
end
return out
