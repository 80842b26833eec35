--[[
  Commits one partition of a run in one atomic step: that partition's bookmark is either before
  the run or after it, never in between (other partitions of the run commit on their own; see
  docs/runs.md). It touches only the run's own files and leases in that partition: O(what the run
  did there), whatever the band holds. Idempotent: a partition the run committed already answers
  {1, version, runs, 'again'} (a commit step retried after its worker died).
  Input:
    KEYS[1] jobmeta      hash: version, runs, lastRunId, updatedAt, epoch, historyTrimmed, historyRuns
    KEYS[2] parts        set: partitions with state
    KEYS[3] history      list: run summaries and partition commits, newest first
    KEYS[4] active       zset: run id -> slot expiry
    KEYS[5] stagedparts  set (run): partitions the run staged files in
    KEYS[6] leasedparts  set (run): partitions the run leased files in
    KEYS[7] deltas       hash: '<runId>|<partition>' -> band entries a commit added (history deltas)
    KEYS[8] lexical      zset: a committed run's greatest key -> its newest time (the lexical listing's cursor candidates)
    KEYS[9] run          hash: the run record ('committed:<partition>' -> version, committedParts)
    then 9 keys for the partition: meta, band, bidx, lease, leaserun, staged, retry,
    runleased (the keys this run leased in the partition), robbed (runs whose leases another
    run took over)
    ARGV[1] runId
    ARGV[2] bandMs
    ARGV[3] maxFilesInBand
    ARGV[4] historySize  (in runs)
    ARGV[5] entryJson    the history entry of this commit (the script adds version, state, delta, parts)
    ARGV[6] epoch        the bookmark epoch when the run started
    ARGV[7] keepMode     '' (not a lexical job), 'lexical' (a lexical run: the band keeps what is at
                         or above meta 'keep'), 'full' (a full listing of a lexical job: 'keep'
                         moves up to the band edge before this commit), 'events' (an event-fed
                         run: its files join the band, hwm and wm do not move, 'keep' stays)
    ARGV[8] the partition id
    then 9 computed by the caller from the run's staged set (so the script neither hashes nor
    reads the files one by one): the number of staged files, their highest time, greatest key and
    its time, the band fields (5 bytes each, sorted), the records per field (u32 each), the
    records grouped by field (10 bytes each), the entries (15 bytes each, field .. record) for the
    history delta; and the band edge the run planned with ('' if none)
    optional, for a job with output.catalog (docs/catalog.md): 2 more keys, reg (hash) and due
    (zset) of the job's catalog registrations, and 1 more argument, the registration entry (JSON;
    '' = none): queued under '<runId>|<partition>', due at once, in this same atomic step, so that
    a commit never loses its registration
  Output: {1, version, runs}, {1, version, runs, 'again'}, or {0, reason}:
    'slot'  the run no longer holds a live slot (it ended, or was presumed dead: others may have its files);
    'epoch' the bookmark was reset or rewound since the run started;
    'parts' the partition holds more staged files than the caller computed entries for (a late
            duplicate batch: the caller retries).
  In the partition: staged files join the band (unless already there at that time or later) and
  leave the retry list, the run's own leases go (a lease another run took over stays),
  hwm = max committed time, wm = max(wm, min(hwm, oldest lease - 1)). The band is pruned (by
  score) below max(wm - band, floor); when it still holds more than maxFilesInBand files, floor
  rises (see bandCap). The history entry holds the commit's delta: the partition's state before
  and after (wm, hwm, floor, files), and the band entries it added (in KEYS[7]), never the band.
  jobmeta 'runs' counts runs that committed at least one partition.
]]
-- @include redis-now
-- @include band
-- @include history
local jobmeta, parts, history, active, stagedparts, leasedparts, deltas, lexical, run = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local runId, bandMs, cap, histSize = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = redisNowMs()
local already = redis.call('HGET', run, 'committed:' .. ARGV[8])
if already then
  return {1, tonumber(already), tonumber(redis.call('HGET', jobmeta, 'runs') or '0'), 'again'}
end
local slot = redis.call('ZSCORE', active, runId)
if not slot or tonumber(slot) <= now then return {0, 'slot'} end
if tostring(redis.call('HGET', jobmeta, 'epoch') or '0') ~= ARGV[6] then return {0, 'epoch'} end
local keepMode = ARGV[7]
local nTouched = 1
local summary = cjson.decode(ARGV[5])
local state = {}
local deltaParts = {}
local committed = 0
local maxKey, maxLm = nil, nil
local function metaOf(meta)
  local m = redis.call('HMGET', meta, 'wm', 'hwm', 'floor', 'files', 'bandn', 'keep')
  return {wm = m[1] or nil, hwm = m[2] or nil, floor = m[3] or nil, files = m[4] or '0', bandn = m[5] or '0', keep = m[6] or nil}
end
for i = 1, nTouched do
  local pid = ARGV[7 + i]
  local base = 9 + (i - 1) * 9
  local meta, band, bidx, lease, leaserun, staged, retry, runleased, robbed =
    KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5], KEYS[base + 6], KEYS[base + 7], KEYS[base + 8], KEYS[base + 9]
  local a = 7 + nTouched + (i - 1) * 9
  local count, runHwm, runMaxKey, runMaxKeyLm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3], tonumber(ARGV[a + 4])
  if redis.call('ZCARD', staged) ~= count then return {0, 'parts'} end
  local before = metaOf(meta)
  local hwm = tonumber(before.hwm or '-1')
  -- An event-fed run ('events') adds its files to the band but moves no cursor: the files no
  -- listing has covered yet (older backlog) must stay above the band edge (docs/events.md).
  if count > 0 and keepMode ~= 'events' then
    if runHwm > hwm then hwm = runHwm end
    if not maxKey or runMaxKey > maxKey then maxKey = runMaxKey end
    if not maxLm or runHwm > maxLm then maxLm = runHwm end
  end
  if count > 0 and redis.call('EXISTS', retry) == 1 then
    chunked('HDEL', retry, redis.call('ZRANGE', staged, 0, -1), 1000)
  end
  local added, n = bandAppend(band, bidx, meta, ARGV[a + 5], ARGV[a + 6], ARGV[a + 7])
  if n > 0 then
    redis.call('HSET', deltas, runId .. '|' .. pid, added or ARGV[a + 8])
    deltaParts[#deltaParts + 1] = pid
  end
  -- The run's own leases go, staged or not (a worker may have skipped a file as done, or found
  -- it deleted). A lease another run took over stays: that can only happen to a run presumed
  -- dead, which the slot check above refuses, but the robbed set makes sure.
  local mine = redis.call('SMEMBERS', runleased)
  if #mine > 0 then
    local drop = mine
    if redis.call('SISMEMBER', robbed, runId) == 1 then
      local owners = chunked('HMGET', leaserun, mine, 1000)
      drop = {}
      for j, k in ipairs(mine) do
        if owners[j] == runId then drop[#drop + 1] = k end
      end
      redis.call('SREM', robbed, runId)
    end
    if #drop > 0 then
      chunked('HDEL', leaserun, drop, 1000)
      chunked('ZREM', lease, drop, 1000)
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
    -- A lexical job keeps the band from 'keep' (the edge at its last full listing) up, so that its
    -- next full listing can still tell the files the lexical runs missed from those they committed.
    local pruneAt = edge
    -- The edge before this commit ('0' for a partition never committed: the band holds all).
    local old = 0
    if before.wm then old = tonumber(before.wm) - bandMs end
    if before.floor and tonumber(before.floor) > old then old = tonumber(before.floor) end
    if keepMode == 'full' then
      -- Down to where this listing checked: the edge it planned with, or the one before this commit.
      local planned = tonumber(ARGV[a + 9])
      if planned and planned < old then old = planned end
      redis.call('HSET', meta, 'keep', string.format('%d', old))
      pruneAt = old
    elseif keepMode == 'lexical' then
      local keep = redis.call('HGET', meta, 'keep')
      if not keep then
        -- A job that just became lexical: keep from here on.
        keep = string.format('%d', old)
        redis.call('HSET', meta, 'keep', keep)
      end
      pruneAt = tonumber(keep)
    elseif keepMode == 'events' then
      -- 'keep' stays, and so does the band from it up: a lexical job's next full listing checks
      -- files down to there against the band.
      local keep = redis.call('HGET', meta, 'keep')
      if keep then pruneAt = tonumber(keep) end
    else
      redis.call('HDEL', meta, 'keep')
    end
    if pruneAt > edge then pruneAt = edge end
    if before.floor and tonumber(before.floor) > pruneAt then pruneAt = tonumber(before.floor) end
    bandPrune(band, bidx, meta, pruneAt)
    bandCap(band, bidx, meta, cap, ml, wm)
    redis.call('HSET', meta, 'hwm', string.format('%d', hwm), 'wm', string.format('%d', wm), 'updatedAt', now, 'lastRunId', runId)
    redis.call('HINCRBY', meta, 'files', n)
    redis.call('SADD', parts, pid)
  elseif n > 0 then
    -- A partition no listing run committed yet, taken by events: its files are in the band, no cursor.
    redis.call('HSET', meta, 'updatedAt', now, 'lastRunId', runId)
    redis.call('HINCRBY', meta, 'files', n)
    redis.call('SADD', parts, pid)
  end
  redis.call('DEL', staged, runleased)
  committed = committed + n
  local after = metaOf(meta)
  state[pid] = {wm = after.wm, hwm = after.hwm, floor = after.floor, files = after.files, bandFiles = after.bandn, added = n,
    keep = after.keep, before = {wm = before.wm, hwm = before.hwm, floor = before.floor, files = before.files, keep = before.keep}}
end
for i = 1, nTouched do
  redis.call('SREM', stagedparts, ARGV[7 + i])
  redis.call('SREM', leasedparts, ARGV[7 + i])
end
if maxKey then
  redis.call('ZADD', lexical, maxLm, maxKey)
  redis.call('ZREMRANGEBYRANK', lexical, 0, -1001)
end
local version = redis.call('HINCRBY', jobmeta, 'version', 1)
local runs
if redis.call('HINCRBY', run, 'committedParts', 1) == 1 then
  runs = redis.call('HINCRBY', jobmeta, 'runs', 1)
else
  runs = tonumber(redis.call('HGET', jobmeta, 'runs') or '0')
end
redis.call('HSET', run, 'committed:' .. ARGV[8], version)
redis.call('HSET', jobmeta, 'lastRunId', runId, 'updatedAt', now)
summary.kind = 'commit'
summary.partition = ARGV[8]
summary.version = version
summary.committed = true
summary.filesCommitted = committed
summary.state = state
summary.delta = deltaParts
summary.parts = redis.call('SMEMBERS', parts)
historyPush(history, deltas, jobmeta, cjson.encode(summary), histSize, false)
local regKey = 9 + nTouched * 9
local regEntry = ARGV[8 + nTouched * 10]
if KEYS[regKey + 2] and regEntry and regEntry ~= '' then
  local field = runId .. '|' .. ARGV[8]
  redis.call('HSET', KEYS[regKey + 1], field, regEntry)
  redis.call('ZADD', KEYS[regKey + 2], 0, field)
end
return {1, version, runs}
