--[[
  Claims catalog registrations that are due (docs/catalog.md): each claimed entry's next attempt
  moves leaseMs ahead, so that a worker that dies while registering leaves it to another one after
  that long (at least once; the registration itself is idempotent).
  Input:
    KEYS[1] reg    hash: '<runId>|<partition>' -> the entry (JSON: runId, partition, folders, attempts, lastError)
    KEYS[2] due    zset: '<runId>|<partition>' -> next attempt (epoch ms, Redis clock; 0 = now)
    ARGV[1] max    entries to claim at most
    ARGV[2] leaseMs
    ARGV[3] field  only this entry ('' = any due entry)
  Output: {field, entry, field, entry, ...} of the entries claimed.
]]
-- @include redis-now
local reg, due = KEYS[1], KEYS[2]
local max, leaseMs, only = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local now = redisNowMs()
local fields
if only ~= '' then
  local s = redis.call('ZSCORE', due, only)
  fields = {}
  if s and tonumber(s) <= now then fields[1] = only end
else
  fields = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, max)
end
local out = {}
for _, f in ipairs(fields) do
  local entry = redis.call('HGET', reg, f)
  if entry then
    redis.call('ZADD', due, now + leaseMs, f)
    out[#out + 1] = f
    out[#out + 1] = entry
  else
    redis.call('ZREM', due, f)
  end
end
return out
