/**
 * Commits a whole run in one atomic step: the bookmark is either before the run or after it,
 * never in between.
 *
 * KEYS: jobmeta, parts, history, then 5 keys per touched partition (meta, done, lease, leaserun,
 * staged), then 2 keys per other partition (meta, done) for the snapshot.
 * ARGV: runId, bandMs, maxFilesInBand, nowMs, historySize, summaryJson, nTouched, then the touched
 * partition ids, then the other partition ids.
 *
 * Per touched partition: staged files join the band (unless already there at that time or later),
 * this run's leases go, hwm = max committed time, wm = max(wm, min(hwm, oldest lease - 1)). The
 * band is pruned below max(wm - band, floor); when it still holds more than maxFilesInBand files,
 * floor rises to the time of the oldest file that fits (never past a lease; files sharing one time
 * are never split). Then the job's version goes up and the run is pushed on the history with the
 * state after it. Returns {version, runs}.
 */
export const COMMIT_RUN = `
local jobmeta, parts, history = KEYS[1], KEYS[2], KEYS[3]
local runId, bandMs, cap, now, histSize = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local summary = cjson.decode(ARGV[6])
local nTouched = tonumber(ARGV[7])
local state = {}
local function snapshot(pid, meta, done)
  local m = redis.call('HGETALL', meta)
  local h = {}
  for i = 1, #m, 2 do h[m[i]] = m[i + 1] end
  local band = redis.call('ZRANGE', done, 0, -1, 'WITHSCORES')
  local b = {}
  for i = 1, #band, 2 do b[#b + 1] = {band[i], tonumber(band[i + 1])} end
  state[pid] = {wm = h.wm, hwm = h.hwm, floor = h.floor, files = h.files, band = b}
end
local committed = 0
for t = 1, nTouched do
  local pid = ARGV[7 + t]
  local base = 3 + (t - 1) * 5
  local meta, done, lease, leaserun, staged = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5]
  local files = redis.call('ZRANGE', staged, 0, -1, 'WITHSCORES')
  local hwm = tonumber(redis.call('HGET', meta, 'hwm') or '-1')
  local n = 0
  for i = 1, #files, 2 do
    local k, lm = files[i], tonumber(files[i + 1])
    local doneAt = redis.call('ZSCORE', done, k)
    if not (doneAt and tonumber(doneAt) >= lm) then
      redis.call('ZADD', done, lm, k)
      n = n + 1
    end
    if lm > hwm then hwm = lm end
    if redis.call('HGET', leaserun, k) == runId then
      redis.call('ZREM', lease, k)
      redis.call('HDEL', leaserun, k)
    end
  end
  local minLease = redis.call('ZRANGE', lease, 0, 0, 'WITHSCORES')
  local ml = nil
  if #minLease == 2 then ml = tonumber(minLease[2]) end
  local wm = hwm
  if ml and ml - 1 < wm then wm = ml - 1 end
  local oldWm = redis.call('HGET', meta, 'wm')
  if oldWm and tonumber(oldWm) > wm then wm = tonumber(oldWm) end
  local edge = wm - bandMs
  local floor = tonumber(redis.call('HGET', meta, 'floor') or '-1e308')
  if floor > edge then edge = floor end
  redis.call('ZREMRANGEBYSCORE', done, '-inf', '(' .. edge)
  local count = redis.call('ZCARD', done)
  if count > cap then
    local cut = tonumber(redis.call('ZRANGE', done, count - cap, count - cap, 'WITHSCORES')[2])
    if ml and ml < cut then cut = ml end
    if cut > edge then
      edge = cut
      floor = cut
      redis.call('ZREMRANGEBYSCORE', done, '-inf', '(' .. edge)
      redis.call('HSET', meta, 'floor', tostring(floor))
    end
  end
  redis.call('HSET', meta, 'hwm', tostring(hwm), 'wm', tostring(wm), 'updatedAt', now, 'lastRunId', runId)
  redis.call('HINCRBY', meta, 'files', n)
  redis.call('SADD', parts, pid)
  redis.call('DEL', staged)
  committed = committed + n
  snapshot(pid, meta, done)
end
local others = #ARGV - 7 - nTouched
for o = 1, others do
  local pid = ARGV[7 + nTouched + o]
  local base = 3 + nTouched * 5 + (o - 1) * 2
  snapshot(pid, KEYS[base + 1], KEYS[base + 2])
end
local version = redis.call('HINCRBY', jobmeta, 'version', 1)
local runs = redis.call('HINCRBY', jobmeta, 'runs', 1)
redis.call('HSET', jobmeta, 'lastRunId', runId, 'updatedAt', now)
summary.version = version
summary.committed = true
summary.filesCommitted = committed
summary.state = state
redis.call('LPUSH', history, cjson.encode(summary))
redis.call('LTRIM', history, 0, histSize - 1)
return {version, runs}
`;
