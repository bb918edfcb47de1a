-- The one piece of protobuf a script writes (issue 17, item 1). C++ serializes a
-- rogatory.common.v1.Event without its sequence; only the script knows the request's next
-- sequence number (it INCRs it in the same atomic step), so it appends field 3
-- (int64 sequence, varint, tag byte 0x18) to the bytes: a field appended to an encoding is a
-- field of the message. A script includes it with the line
--   -- #include event_sequence.lua
-- Tested against the real decoder in tests/redis/lua_library_test.cc.
local function rg_append_sequence(event_bytes, sequence)
  local out = {}
  local n = math.floor(sequence)
  while n >= 128 do
    out[#out + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  out[#out + 1] = string.char(n)
  return event_bytes .. '\24' .. table.concat(out)
end
