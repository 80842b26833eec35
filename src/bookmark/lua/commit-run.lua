--[[
  Commits a whole run in one atomic step: the bookmark is either before the run or after it,
  never in between. (Variable key count: the caller passes the number of keys.)
  Input:
    KEYS[1] jobmeta      hash: version, runs, lastRunId, updatedAt, epoch
    KEYS[2] parts        set: partitions with state
    KEYS[3] history      list: run summaries, newest first
    KEYS[4] active       zset: run id -> slot expiry
    KEYS[5] stagedparts  set (run)
    KEYS[6] leasedparts  set (run)
    then 6 keys per touched partition: meta, done, lease, leaserun, staged, retry
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
  and leave the retry list, every lease of this run goes, hwm = max committed time,
  wm = max(wm, min(hwm, oldest lease - 1)). The band is pruned below max(wm - band, floor); when
  it still holds more than maxFilesInBand files, floor rises to the time of the oldest file that
  fits (never past a lease; files sharing one time are never split). Then the job's version goes
  up and the run is pushed on the history with the state after it of the partitions it touched
  (`state`) and the ids of all partitions (`parts`).
]]
-- @include redis-now
local jobmeta, parts, history, active, stagedparts, leasedparts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
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
local committed = 0
for i = 1, nTouched do
  local pid = ARGV[6 + i]
  local base = 6 + (i - 1) * 6
  local meta, done, lease, leaserun, staged, retry = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5], KEYS[base + 6]
  local files = redis.call('ZRANGE', staged, 0, -1, 'WITHSCORES')
  local hwm = tonumber(redis.call('HGET', meta, 'hwm') or '-1')
  local n = 0
  for j = 1, #files, 2 do
    local k, lm = files[j], tonumber(files[j + 1])
    local doneAt = redis.call('ZSCORE', done, k)
    if not (doneAt and tonumber(doneAt) >= lm) then
      redis.call('ZADD', done, lm, k)
      n = n + 1
    end
    redis.call('HDEL', retry, k)
    if lm > hwm then hwm = lm end
  end
  -- Every lease of this run goes, staged or not (a worker may have skipped a file as done, or
  -- found it deleted).
  local owners = redis.call('HGETALL', leaserun)
  for j = 1, #owners, 2 do
    if owners[j + 1] == runId then
      redis.call('HDEL', leaserun, owners[j])
      redis.call('ZREM', lease, owners[j])
    end
  end
  local minLease = redis.call('ZRANGE', lease, 0, 0, 'WITHSCORES')
  local ml = nil
  if #minLease == 2 then ml = tonumber(minLease[2]) end
  local wm = hwm
  if ml and ml - 1 < wm then wm = ml - 1 end
  local oldWm = redis.call('HGET', meta, 'wm')
  if oldWm and tonumber(oldWm) > wm then wm = tonumber(oldWm) end
  if wm >= 0 then
    local edge = wm - bandMs
    local floor = tonumber(redis.call('HGET', meta, 'floor') or '-1e308')
    if floor > edge then edge = floor end
    redis.call('ZREMRANGEBYSCORE', done, '-inf', '(' .. edge)
    local count = redis.call('ZCARD', done)
    if count > cap then
      local cut = tonumber(redis.call('ZRANGE', done, count - cap, count - cap, 'WITHSCORES')[2])
      if ml and ml < cut then cut = ml end
      if cut > edge then
        redis.call('ZREMRANGEBYSCORE', done, '-inf', '(' .. cut)
        redis.call('HSET', meta, 'floor', string.format('%d', cut))
      end
    end
    redis.call('HSET', meta, 'hwm', string.format('%d', hwm), 'wm', string.format('%d', wm), 'updatedAt', now, 'lastRunId', runId)
    redis.call('HINCRBY', meta, 'files', n)
    redis.call('SADD', parts, pid)
  end
  redis.call('DEL', staged)
  committed = committed + n
  local m = redis.call('HGETALL', meta)
  local h = {}
  for j = 1, #m, 2 do h[m[j]] = m[j + 1] end
  local band = redis.call('ZRANGE', done, 0, -1, 'WITHSCORES')
  local b = {}
  for j = 1, #band, 2 do b[#b + 1] = {band[j], tonumber(band[j + 1])} end
  state[pid] = {wm = h.wm, hwm = h.hwm, floor = h.floor, files = h.files, band = b}
end
redis.call('DEL', stagedparts, leasedparts)
local version = redis.call('HINCRBY', jobmeta, 'version', 1)
local runs = redis.call('HINCRBY', jobmeta, 'runs', 1)
redis.call('HSET', jobmeta, 'lastRunId', runId, 'updatedAt', now)
summary.version = version
summary.committed = true
summary.filesCommitted = committed
summary.state = state
summary.parts = redis.call('SMEMBERS', parts)
redis.call('LPUSH', history, cjson.encode(summary))
redis.call('LTRIM', history, 0, histSize - 1)
return {1, version, runs}
