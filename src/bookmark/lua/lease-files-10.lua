--[[
  Leases files of one partition to a run.
  Input:
    KEYS[1] lease       zset: leased key -> last-modified (holds the watermark below it)
    KEYS[2] leaserun    hash: leased key -> owner run id
    KEYS[3] active      zset: run id -> slot expiry
    KEYS[4] band        hash: the compact band (see includes/band.lua)
    KEYS[5] meta        hash: the partition's wm, hwm, floor, ...
    KEYS[6] leasedparts set: the partitions this run leased in
    KEYS[7] retry       hash: dead letters put back (key -> last-modified), taken whatever the band says
    KEYS[8] runleased   set: the keys this run leased in this partition (its commit drops exactly these)
    KEYS[9] robbed      set: runs whose leases in this partition another run took over (their
                        commit, which the slot check refuses anyway, then checks each owner;
                        kept to at most 1,000)
    KEYS[10] leasedp    set (job): partitions that have had leases (the lexical cursor must not
                        pass a partition's leases, committed or not)
    ARGV[1] runId
    ARGV[2] bandMs
    ARGV[3] partitionId
    ARGV[4] ttlSeconds  of leasedparts and runleased
    ARGV[5] '1' for the full listing of a lexical job: the edge is lowered to meta 'keep' (files
            the lexical runs since the last full listing may have missed are still leasable)
    ARGV[6..] key, lastModified pairs
  Output: the keys leased.
  A file is skipped when another live run holds it, when the band holds it at that time or later,
  or when it lies below the partition's current band edge (a concurrent commit may have moved the
  edge since the run planned: such a lease would hold the watermark forever) — unless it is a
  retried dead letter.
]]
-- @include redis-now
-- @include band-edge
-- @include band
local lease, leaserun, active, band, meta, leasedparts, retry, runleased, robbed, leasedp =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local runId, bandMs = ARGV[1], tonumber(ARGV[2])
local now = redisNowMs()
local edge = bandEdge(meta, bandMs)
if ARGV[5] == '1' then
  -- max(min(wm - band, keep), floor): 'keep' lowers the watermark's edge, never the cap's floor.
  -- A missing 'keep' lowers nothing (the band was pruned at the edge).
  local m = redis.call('HMGET', meta, 'wm', 'floor', 'keep')
  if m[1] and m[3] then
    edge = tonumber(m[1]) - bandMs
    if tonumber(m[3]) < edge then edge = tonumber(m[3]) end
    if m[2] and tonumber(m[2]) > edge then edge = tonumber(m[2]) end
  end
end
local taken = {}
for i = 6, #ARGV, 2 do
  local k = ARGV[i]
  local lm = tonumber(ARGV[i + 1])
  local retried = redis.call('HEXISTS', retry, k) == 1
  if retried or (lm >= edge and not bandHolds(band, k, lm)) then
    local owner = redis.call('HGET', leaserun, k)
    local free = (not owner) or owner == runId
    if not free then
      local exp = redis.call('ZSCORE', active, owner)
      free = (not exp) or tonumber(exp) <= now
    end
    if free then
      if owner and owner ~= runId then
        redis.call('SADD', robbed, owner)
        redis.call('EXPIRE', robbed, tonumber(ARGV[4]))
        if redis.call('SCARD', robbed) > 1000 then redis.call('SPOP', robbed, 500) end
      end
      redis.call('ZADD', lease, lm, k)
      redis.call('HSET', leaserun, k, runId)
      redis.call('SADD', runleased, k)
      taken[#taken + 1] = k
    end
  end
end
if #taken > 0 then
  redis.call('SADD', leasedparts, ARGV[3])
  redis.call('SADD', leasedp, ARGV[3])
  redis.call('EXPIRE', leasedparts, tonumber(ARGV[4]))
  redis.call('EXPIRE', runleased, tonumber(ARGV[4]))
end
return taken
