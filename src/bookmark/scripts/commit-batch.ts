/**
 * Commits one batch of one partition in a single atomic step.
 * KEYS: meta hash, done zset, lease zset, leaserun hash, run hash, parts set, job meta hash.
 * ARGV: runId, bandMs, nowMs, partitionId, commitId, updateState ("1"|"0"), finalBatchId ("" unless the
 * whole batch is now done), then key, lastModified, size triples.
 *
 * For each file: add it to the band (unless already there at that time or later) and drop this
 * run's lease. Then: hwm = max committed time; wm = max(wm, min(hwm, oldest lease - 1));
 * prune band entries below wm - band. Each commitId is applied once (a replayed commit changes
 * nothing); a final batch id is counted once as a finished batch of the run. Returns {newlyCommitted, alreadyCommitted, wm}.
 */
export const COMMIT_BATCH = `
local meta, done, lease, leaserun, run, parts, jobmeta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local runId, bandMs, now, pid, commitId, update, final = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1', ARGV[7]
if redis.call('HSETNX', run, 'commit:' .. commitId, now) == 0 then
  return {0, 0, redis.call('HGET', meta, 'wm') or ''}
end
if final ~= '' and redis.call('HSETNX', run, 'batch:' .. final, 'ok') == 1 then
  redis.call('HINCRBY', run, 'batchesOk', 1)
end
local n, already, bytes = 0, 0, 0
local hwm = tonumber(redis.call('HGET', meta, 'hwm') or '-1')
for i = 8, #ARGV, 3 do
  local k, lm, size = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if update then
    local doneAt = redis.call('ZSCORE', done, k)
    if doneAt and tonumber(doneAt) >= lm then
      already = already + 1
    else
      redis.call('ZADD', done, lm, k)
      n = n + 1
    end
    if lm > hwm then hwm = lm end
    local owner = redis.call('HGET', leaserun, k)
    if owner == runId then
      redis.call('ZREM', lease, k)
      redis.call('HDEL', leaserun, k)
    end
  else
    n = n + 1
  end
  bytes = bytes + size
end
local wm = redis.call('HGET', meta, 'wm')
if update then
  local minLease = redis.call('ZRANGE', lease, 0, 0, 'WITHSCORES')
  local cand = hwm
  if #minLease == 2 and tonumber(minLease[2]) - 1 < cand then cand = tonumber(minLease[2]) - 1 end
  if wm and tonumber(wm) > cand then cand = tonumber(wm) end
  wm = tostring(cand)
  redis.call('ZREMRANGEBYSCORE', done, '-inf', '(' .. (cand - bandMs))
  redis.call('HSET', meta, 'hwm', tostring(hwm), 'wm', wm, 'updatedAt', now, 'lastRunId', runId)
  redis.call('HINCRBY', meta, 'files', n)
  redis.call('HINCRBY', meta, 'bytes', bytes)
  redis.call('SADD', parts, pid)
  redis.call('HINCRBY', jobmeta, 'version', 1)
  redis.call('HSET', jobmeta, 'lastRunId', runId, 'updatedAt', now)
end
redis.call('HINCRBY', run, 'filesCommitted', n + already)
redis.call('HINCRBY', run, 'bytesCommitted', bytes)
return {n, already, wm or ''}
`;
