/**
 * Leases files of one partition to a run. A file is skipped when another live run holds it, when
 * it is committed at that time or later, or when it lies below the partition's current band edge
 * (a concurrent commit may have moved the edge since the run planned: such a lease would hold the
 * watermark forever). KEYS: lease zset, leaserun hash, active zset, done zset, meta hash,
 * leasedparts set (of the run). ARGV: runId, nowMs, bandMs, partitionId, ttlSeconds, then key,
 * lastModified pairs. Returns the keys leased.
 */
export const LEASE_FILES = `
local now, bandMs = tonumber(ARGV[2]), tonumber(ARGV[3])
local m = redis.call('HMGET', KEYS[5], 'wm', 'floor')
local edge = -1e308
if m[1] then edge = tonumber(m[1]) - bandMs end
if m[2] and tonumber(m[2]) > edge then edge = tonumber(m[2]) end
local taken = {}
for i = 6, #ARGV, 2 do
  local k = ARGV[i]
  local lm = tonumber(ARGV[i + 1])
  local doneAt = redis.call('ZSCORE', KEYS[4], k)
  if lm >= edge and not (doneAt and tonumber(doneAt) >= lm) then
    local owner = redis.call('HGET', KEYS[2], k)
    local free = (not owner) or owner == ARGV[1]
    if not free then
      local exp = redis.call('ZSCORE', KEYS[3], owner)
      free = (not exp) or tonumber(exp) <= now
    end
    if free then
      redis.call('ZADD', KEYS[1], lm, k)
      redis.call('HSET', KEYS[2], k, ARGV[1])
      taken[#taken + 1] = k
    end
  end
end
if #taken > 0 then
  redis.call('SADD', KEYS[6], ARGV[4])
  redis.call('EXPIRE', KEYS[6], tonumber(ARGV[5]))
end
return taken
`;
