--[[
  Commits a whole run in one atomic step: the bookmark is either before the run or after it,
  never in between. It touches only the run's own files, its own leases and the partitions it
  touched: O(what the run did), whatever the band holds. (Variable key count: the caller passes
  the number of keys.)
  Input:
    KEYS[1] jobmeta      hash: version, runs, lastRunId, updatedAt, epoch, historyTrimmed
    KEYS[2] parts        set: partitions with state
    KEYS[3] history      list: run summaries, newest first
    KEYS[4] active       zset: run id -> slot expiry
    KEYS[5] stagedparts  set (run)
    KEYS[6] leasedparts  set (run)
    KEYS[7] deltas       hash: '<runId>|<partition>' -> band entries a run added (history deltas)
    KEYS[8] lexical      zset: a committed run's greatest key -> its newest time (the lexical listing's cursor candidates)
    then 8 keys per touched partition: meta, band, bidx, lease, leaserun, staged, retry,
    runleased (the keys this run leased in the partition)
    ARGV[1] runId
    ARGV[2] bandMs
    ARGV[3] maxFilesInBand
    ARGV[4] historySize
    ARGV[5] summaryJson
    ARGV[6] epoch        the bookmark epoch when the run started
    ARGV[7..] the touched partition ids (every partition the run staged or leased files in)
  Output: {1, version, runs}, or {0, reason}:
    'slot'  the run no longer holds a live slot (it was presumed dead; others may have its files);
    'epoch' the bookmark was reset or rewound since the run started;
    'parts' the run staged into a partition the caller did not pass (a late duplicate batch:
            the caller retries with the new list).
  Per touched partition: staged files join the band (unless already there at that time or later)
  and leave the retry list, the run's own leases go (a lease another run took over stays),
  hwm = max committed time, wm = max(wm, min(hwm, oldest lease - 1)). The band is pruned (by
  score) below max(wm - band, floor); when it still holds more than maxFilesInBand files, floor
  rises (see bandCap). The history entry holds the run's delta per partition: the state before
  and after (wm, hwm, floor, files), and the band entries it added (in KEYS[7]), never the band.
]]
-- @include redis-now
-- @include band
-- @include history
local jobmeta, parts, history, active, stagedparts, leasedparts, deltas, lexical = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local runId, bandMs, cap, histSize = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = redisNowMs()
local slot = redis.call('ZSCORE', active, runId)
if not slot or tonumber(slot) <= now then return {0, 'slot'} end
if tostring(redis.call('HGET', jobmeta, 'epoch') or '0') ~= ARGV[6] then return {0, 'epoch'} end
local passed = {}
local nTouched = #ARGV - 6
for i = 1, nTouched do passed[ARGV[6 + i]] = true end
for _, p in ipairs(redis.call('SUNION', stagedparts, leasedparts)) do
  if not passed[p] then return {0, 'parts'} end
end
local summary = cjson.decode(ARGV[5])
local state = {}
local deltaParts = {}
local committed = 0
local maxKey, maxLm = nil, nil
local function metaOf(meta)
  local m = redis.call('HMGET', meta, 'wm', 'hwm', 'floor', 'files', 'bandn')
  return {wm = m[1] or nil, hwm = m[2] or nil, floor = m[3] or nil, files = m[4] or '0', bandn = m[5] or '0'}
end
for i = 1, nTouched do
  local pid = ARGV[6 + i]
  local base = 8 + (i - 1) * 8
  local meta, band, bidx, lease, leaserun, staged, retry, runleased =
    KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5], KEYS[base + 6], KEYS[base + 7], KEYS[base + 8]
  local before = metaOf(meta)
  local files = redis.call('ZRANGE', staged, 0, -1, 'WITHSCORES')
  local hwm = tonumber(before.hwm or '-1')
  local groups = {}
  for j = 1, #files, 2 do
    local k, lm = files[j], tonumber(files[j + 1])
    local f, r = entryOf(k, lm)
    local g = groups[f]
    if not g then g = {}; groups[f] = g end
    g[#g + 1] = r
    if lm > hwm then hwm = lm end
    if not maxKey or k > maxKey then maxKey = k end
    if not maxLm or lm > maxLm then maxLm = lm end
  end
  for j = 1, #files, 2 do redis.call('HDEL', retry, files[j]) end
  local added, n = bandAppend(band, bidx, meta, groups)
  if n > 0 then
    redis.call('HSET', deltas, runId .. '|' .. pid, table.concat(added))
    deltaParts[#deltaParts + 1] = pid
  end
  -- The run's own leases go, staged or not (a worker may have skipped a file as done, or found
  -- it deleted); a lease another run took over since stays.
  for _, k in ipairs(redis.call('SMEMBERS', runleased)) do
    if redis.call('HGET', leaserun, k) == runId then
      redis.call('HDEL', leaserun, k)
      redis.call('ZREM', lease, k)
    end
  end
  local minLease = redis.call('ZRANGE', lease, 0, 0, 'WITHSCORES')
  local ml = nil
  if #minLease == 2 then ml = tonumber(minLease[2]) end
  local wm = hwm
  if ml and ml - 1 < wm then wm = ml - 1 end
  if before.wm and tonumber(before.wm) > wm then wm = tonumber(before.wm) end
  if wm >= 0 then
    local edge = wm - bandMs
    local floor = tonumber(before.floor or '-1e308')
    if floor > edge then edge = floor end
    bandPrune(band, bidx, meta, edge)
    bandCap(band, bidx, meta, cap, ml, wm)
    redis.call('HSET', meta, 'hwm', string.format('%d', hwm), 'wm', string.format('%d', wm), 'updatedAt', now, 'lastRunId', runId)
    redis.call('HINCRBY', meta, 'files', n)
    redis.call('SADD', parts, pid)
  end
  redis.call('DEL', staged, runleased)
  committed = committed + n
  local after = metaOf(meta)
  state[pid] = {wm = after.wm, hwm = after.hwm, floor = after.floor, files = after.files, bandFiles = after.bandn, added = n,
    before = {wm = before.wm, hwm = before.hwm, floor = before.floor, files = before.files}}
end
redis.call('DEL', stagedparts, leasedparts)
if maxKey then
  redis.call('ZADD', lexical, maxLm, maxKey)
  redis.call('ZREMRANGEBYRANK', lexical, 0, -1001)
end
local version = redis.call('HINCRBY', jobmeta, 'version', 1)
local runs = redis.call('HINCRBY', jobmeta, 'runs', 1)
redis.call('HSET', jobmeta, 'lastRunId', runId, 'updatedAt', now)
summary.version = version
summary.committed = true
summary.filesCommitted = committed
summary.state = state
summary.delta = deltaParts
summary.parts = redis.call('SMEMBERS', parts)
historyPush(history, deltas, jobmeta, cjson.encode(summary), histSize)
return {1, version, runs}
