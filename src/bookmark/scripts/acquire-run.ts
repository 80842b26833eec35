/**
 * Takes a run slot. KEYS[1] active zset. ARGV: runId, nowMs, ttlMs, maxConcurrentRuns.
 * Expired slots (killed runs) are dropped first. Returns {1} or {0, running ids...}.
 */
export const ACQUIRE_RUN = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local running = redis.call('ZRANGE', KEYS[1], 0, -1)
if #running >= tonumber(ARGV[4]) then
  local out = {0}
  for _, r in ipairs(running) do out[#out + 1] = r end
  return out
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
return {1}
`;
