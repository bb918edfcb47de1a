#!lua
-- A receiving script for outbox_relay_test.cc's RecordingHandler: the duplicate check every
-- receiving script starts with (as common's record_only_receiver.lua), then the effect of
-- handling the event, appended to a list, in the same atomic step.
--
-- KEYS[1]  the event's duplicate marker for this receiver (EventKeys::Seen), with a TTL
-- KEYS[2]  the effects: a list in the request's shard
-- ARGV[1]  the marker's retention, in milliseconds
-- ARGV[2]  the effect, "<request>|<sequence>|<event id>"
-- Returns  {'duplicate'} when the event was handled before (nothing changed), else {'ok'}
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return {'duplicate'}
end
redis.call('RPUSH', KEYS[2], ARGV[2])
return {'ok'}
