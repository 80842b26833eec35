/**
 * Leases files of one partition to a run, skipping files leased by another live run or already
 * committed at that time. KEYS: lease zset, leaserun hash, active zset, done zset.
 * ARGV: runId, nowMs, then key, lastModified pairs. Returns the keys leased.
 */
export const LEASE_FILES = `
local taken = {}
for i = 3, #ARGV, 2 do
  local k = ARGV[i]
  local lm = tonumber(ARGV[i + 1])
  local doneAt = redis.call('ZSCORE', KEYS[4], k)
  if not (doneAt and tonumber(doneAt) >= lm) then
    local owner = redis.call('HGET', KEYS[2], k)
    local free = (not owner) or owner == ARGV[1]
    if not free then
      local exp = redis.call('ZSCORE', KEYS[3], owner)
      free = (not exp) or tonumber(exp) <= tonumber(ARGV[2])
    end
    if free then
      redis.call('ZADD', KEYS[1], lm, k)
      redis.call('HSET', KEYS[2], k, ARGV[1])
      taken[#taken + 1] = k
    end
  end
end
return taken
`;
