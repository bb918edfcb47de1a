#!lua
-- Marks an event handled, and does nothing else, for a service whose own handling of
-- events has not been built yet (event_sink.cc: RecordOnlyEventHandler), so repeats are
-- recognised. Refused whole when Redis is full (the relay then delivers the event again).
--
-- KEYS[1]  the event's duplicate marker for this receiver (EventKeys::Seen), with a TTL
-- ARGV[1]  the marker's retention, in milliseconds
-- Returns  {'duplicate'} when the event was handled before (nothing changed), else
--          {'handled'}
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return {'duplicate'}
end
return {'handled'}
