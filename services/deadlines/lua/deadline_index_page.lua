#!lua flags=no-writes
-- A page of one shard's deadline index (deadline_store.cc, RedisDeadlineStore's
-- ListIndexPage): up to `limit` entries with score at most a maximum, in (score, id) order
-- (ids compared byte by byte, as Redis orders members of one score) after a cursor. Costs
-- O(log N) to find the cursor (a binary search among the entries of its score) plus
-- O(limit). When every entry is one of the hinted deadlines (those the same page listed last
-- time on this replica), it reads their fields too; else the caller reads the entries'
-- deadlines (deadline_read.lua).
--
-- KEYS[1]    the index: a sorted set of deadline ids by due ms (dl:byreq:<request>, dl:open,
--            dl:byauth:<authority>)
-- KEYS[2..]  the hinted deadlines' hashes (dl:d:<id>), in ARGV's hinted ids' order
-- ARGV[1]    the maximum score (inclusive)
-- ARGV[2]    the most entries
-- ARGV[3]    the cursor's score; '' to start at the beginning
-- ARGV[4]    the cursor's id
-- ARGV[5]    n, how many fields to read of each deadline
-- ARGV[6..]  the n fields, then the hinted ids (KEYS[2..]'s)
-- Returns    {more, read, id, score, id, score, ...}: `more` is '1' when `limit` entries
--            were read without passing the maximum score; `read` is '1' when the entries'
--            fields follow, per entry the n values in order ('' when missing)
local key = KEYS[1]
local max = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
-- Byte order, as Redis orders members of one score (Lua's < follows the locale).
local function not_after(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end
local start = 0
if ARGV[3] ~= '' then
  local lo = redis.call('ZCOUNT', key, '-inf', '(' .. ARGV[3])
  local hi = lo + redis.call('ZCOUNT', key, ARGV[3], ARGV[3])
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local m = redis.call('ZRANGE', key, mid, mid)[1]
    if not_after(m, ARGV[4]) then lo = mid + 1 else hi = mid end
  end
  start = lo
end
local got = redis.call('ZRANGE', key, start, start + limit - 1, 'WITHSCORES')
local nfields = tonumber(ARGV[5])
local hinted = {}
for i = 6 + nfields, #ARGV do hinted[ARGV[i]] = i - 4 - nfields end  -- its KEYS index
local out = {'0', '0'}
local read = 0
local all_hinted = true
for i = 1, #got, 2 do
  if tonumber(got[i + 1]) > max then break end
  read = read + 1
  out[#out + 1] = got[i]
  out[#out + 1] = got[i + 1]
  if not hinted[got[i]] then all_hinted = false end
end
if read == limit then out[1] = '1' end
if all_hinted and read > 0 then
  out[2] = '1'
  for i = 1, read do
    local k = hinted[out[1 + 2 * i]]
    local r = redis.call('HMGET', KEYS[k], unpack(ARGV, 6, 5 + nfields))
    for j = 1, nfields do out[#out + 1] = r[j] or '' end
  end
end
return out
