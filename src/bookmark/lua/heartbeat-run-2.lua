--[[
  Renews a run slot. An expired slot is never revived: a run that stopped renewing for its TTL was
  presumed dead, others may have taken its files, and it must not commit.
  Input:
    KEYS[1] active   zset: run id -> slot expiry (epoch ms)
    KEYS[2] run      hash: the run record (its TTL is renewed too)
    ARGV[1] runId
    ARGV[2] ttlMs
    ARGV[3] runTtlS  TTL of the run record
  Output: 1 while the run holds its slot; 0 once it lost it (the slot is then removed).
]]
-- @include redis-now
local active, run = KEYS[1], KEYS[2]
local now = redisNowMs()
local exp = redis.call('ZSCORE', active, ARGV[1])
if not exp or tonumber(exp) <= now then
  redis.call('ZREM', active, ARGV[1])
  return 0
end
redis.call('ZADD', active, 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', run, tonumber(ARGV[3]))
return 1
