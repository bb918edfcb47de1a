#!lua flags=no-writes
-- The most urgent queued job among some language pairs' queues of one shard
-- (RedisRoutingStore::Claim asks every shard at once, then claims in score order).
--
-- KEYS[1..]  q:<pair>, one per language pair the claimer translates
-- Returns  {} when all are empty, else {score, job id}
local best, best_score
for i = 1, #KEYS do
  local top = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if top[1] and (best == nil or tonumber(top[2]) < best_score) then
    best, best_score = top[1], tonumber(top[2])
  end
end
if best == nil then return {} end
return {string.format('%.0f', best_score), best}
