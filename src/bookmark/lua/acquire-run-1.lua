--[[
  Takes a run slot of a job.
  Input:
    KEYS[1] active   zset: run id -> slot expiry (epoch ms, Redis clock)
    ARGV[1] runId
    ARGV[2] ttlMs    the slot lives until the run's finish step releases it, at the latest this long
    ARGV[3] max      maxConcurrentRuns
  Output: {1} when taken (or already held by this run); {0, running run ids...} when every slot is held.
  Expired slots (runs whose every step was lost, past their timeout) are dropped first.
]]
-- @include redis-now
local active = KEYS[1]
local now = redisNowMs()
redis.call('ZREMRANGEBYSCORE', active, '-inf', now)
-- A run that holds a slot already (a retried plan step) keeps it.
if redis.call('ZSCORE', active, ARGV[1]) then
  redis.call('ZADD', active, now + tonumber(ARGV[2]), ARGV[1])
  return {1}
end
local running = redis.call('ZRANGE', active, 0, -1)
if #running >= tonumber(ARGV[3]) then
  local out = {0}
  for _, r in ipairs(running) do out[#out + 1] = r end
  return out
end
redis.call('ZADD', active, now + tonumber(ARGV[2]), ARGV[1])
return {1}
