#!lua
-- The duplicate check a receiving script starts with, for the receiving scripts still
-- written in C++ (event_sink.h: ReceiverScript() appends a script's body to these lines,
-- without this '#!lua' line, so the caller chooses the flags). A receiving script in a .lua
-- file starts with the same three lines itself (record_only_receiver.lua).
--
-- KEYS[1]  the event's duplicate marker for this receiver (EventKeys::Seen), with a TTL
-- ARGV[1]  the marker's retention, in milliseconds
-- Returns  {'duplicate'} when the event was handled before (nothing changed); else what the
--          body appended after these lines returns
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return {'duplicate'}
end
