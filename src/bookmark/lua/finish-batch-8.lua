--[=[
  Records what one batch attempt did, in one atomic step: the files it wrote are staged for the
  run's commit, archived files are staged and recorded as skipped, files that failed with file
  errors are counted (once per run) and, at bookmark.deadLetterAfterRuns runs, dead-lettered
  (recorded, then staged as done); progress, errors and the batch's outcome go on the run record.
  A job error only marks the run (jobFailure): nothing is counted or dead-lettered for it.
  Input:
    KEYS[1] staged        zset (run, partition): key -> last-modified, awaiting the commit
    KEYS[2] stagedparts   set (run): partitions with staged files
    KEYS[3] run           hash: the run record
    KEYS[4] runErrors     list (run): newest errors first
    KEYS[5] failures      hash (job): "key@lastModified" -> runs in which the file failed for good
    KEYS[6] deadletters   hash (job): key -> JSON record
    KEYS[7] runDead       list (run): keys this run dead-lettered
    KEYS[8] skipped       hash (job): key -> JSON record (archived files)
    ARGV[1] payload JSON {
      partition, commitId, batchId, final (this attempt finished the batch: "" or batch id),
      runId, ttl, maxErrors, deadLetterAfterRuns, countFailures (bool), last (bool: the batch's
      last attempt), at (ISO time),
      ok: [[key, lm, size]], archived: [[key, lm, size, reason]], gone: [[key, reason]],
      failed: [[key, lm, reason]], errors: [reason], badRecords, jobFailure ("" or reason) }
  Output: {staged (newly), failuresLeft, dead-lettered keys...}
  A replayed commitId changes nothing and returns {0, -1}.
]=]
local staged, stagedparts, run, runErrors, failures, deadletters, runDead, skipped =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local a = cjson.decode(ARGV[1])
local ttl = tonumber(a.ttl)
if redis.call('HSETNX', run, 'commit:' .. a.commitId, '1') == 0 then return {0, -1} end

local n, bytes = 0, 0
local function stage(k, lm, size)
  local added = redis.call('ZADD', staged, lm, k)
  n = n + added
  -- A duplicated batch (two workers on one stalled batch) must not count a file's bytes twice.
  if added == 1 then bytes = bytes + size end
end
for _, f in ipairs(a.ok) do stage(f[1], tonumber(f[2]), tonumber(f[3])) end
for _, f in ipairs(a.archived) do
  stage(f[1], tonumber(f[2]), tonumber(f[3]))
  redis.call('HSET', skipped, f[1], cjson.encode({key = f[1], lastModified = f[2], partition = a.partition, runId = a.runId, reason = f[4], at = a.at}))
  redis.call('HINCRBY', run, 'archived', 1)
end
for _, g in ipairs(a.gone) do
  redis.call('HINCRBY', run, 'gone', 1)
  redis.call('LPUSH', runErrors, 'gone: ' .. g[2])
end

local dead = {}
local left = 0
for _, f in ipairs(a.failed) do
  local k, lm, reason = f[1], tonumber(f[2]), f[3]
  local isDead = false
  if a.countFailures then
    local field = k .. '@' .. string.format('%d', lm)
    -- Once per run, however many attempts or duplicated batches saw it fail.
    if redis.call('HSETNX', run, 'failed:' .. field, '1') == 1 then
      local runs = redis.call('HINCRBY', failures, field, 1)
      if runs >= tonumber(a.deadLetterAfterRuns) then
        redis.call('HSET', deadletters, k, cjson.encode({key = k, lastModified = lm, partition = a.partition, runId = a.runId, runs = runs, reason = reason, at = a.at}))
        redis.call('HDEL', failures, field)
        redis.call('RPUSH', runDead, k)
        redis.call('HINCRBY', run, 'deadLettered', 1)
        stage(k, lm, 0)
        dead[#dead + 1] = k
        isDead = true
      end
    end
  end
  if not isDead then left = left + 1 end
end
-- Files, not attempts: only the batch's last attempt counts the files it leaves failed.
if left > 0 and a.last then redis.call('HINCRBY', run, 'fileFailures', left) end

for _, e in ipairs(a.errors) do redis.call('LPUSH', runErrors, e) end
redis.call('LTRIM', runErrors, 0, tonumber(a.maxErrors) - 1)
if tonumber(a.badRecords) > 0 then redis.call('HINCRBY', run, 'badRecords', tonumber(a.badRecords)) end
-- What this attempt blames, for mark-batch-failed when the batch fails for good (the last attempt
-- wins). The run's jobFailure is set only then: an attempt that a retry repairs blames nothing.
if a.jobFailure ~= '' then
  redis.call('HSET', run, 'batchkind:' .. a.batchId, 'job', 'batchwhy:' .. a.batchId, a.jobFailure)
elseif left > 0 then
  redis.call('HSET', run, 'batchkind:' .. a.batchId, 'file')
  redis.call('HDEL', run, 'batchwhy:' .. a.batchId)
end

if #a.ok + #a.archived + #dead > 0 then
  redis.call('SADD', stagedparts, a.partition)
  redis.call('EXPIRE', staged, ttl)
  redis.call('EXPIRE', stagedparts, ttl)
end
redis.call('HINCRBY', run, 'filesStaged', n)
redis.call('HINCRBY', run, 'bytesStaged', bytes)
if a.final ~= '' and left == 0 and a.jobFailure == '' and redis.call('HSETNX', run, 'batch:' .. a.final, 'ok') == 1 then
  redis.call('HINCRBY', run, 'batchesOk', 1)
end
for _, k in ipairs({run, runErrors, runDead}) do redis.call('EXPIRE', k, ttl) end
local out = {n, left}
for _, k in ipairs(dead) do out[#out + 1] = k end
return out
