#!lua
-- Reads a batch of a shard's fan-out outbox through its consumer group (fanout_worker.cc):
-- after a failed delivery, this consumer's own unacknowledged entries first (in order);
-- then entries another (dead) replica read and left for the claim time; then new ones.
--
-- KEYS[1]  the shard's fan-out outbox: a stream with a consumer group
-- ARGV[1]  the consumer group
-- ARGV[2]  this consumer
-- ARGV[3]  the most entries to read
-- ARGV[4]  '1': this consumer's unacknowledged entries first
-- ARGV[5]  how long another consumer's entry must be idle to be taken over, in ms ('0': none)
-- Returns  {1 if none of this consumer's own entries were pending (else 0), entries as
--          XREADGROUP gives them: {id, {field, value...}}}
if ARGV[4] == '1' then
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                       'STREAMS', KEYS[1], '0')
  if r and r[1] and #r[1][2] > 0 then return {0, r[1][2]} end
end
if ARGV[5] ~= '0' then
  local c = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[5], '0-0', 'COUNT', ARGV[3])
  if #c[2] > 0 then return {1, c[2]} end
end
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                     'STREAMS', KEYS[1], '>')
if r and r[1] then return {1, r[1][2]} end
return {1, {}}
