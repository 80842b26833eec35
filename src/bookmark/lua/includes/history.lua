-- Pushes an entry on the job's history: a run's summary (isRun) or one partition commit of a run
-- (pushed before its run's summary). The history keeps `size` runs: when it holds more run
-- summaries, the oldest go, with the commit entries of those runs; commit entries of runs still
-- kept (a run that ran alongside others can have commits below older runs' summaries) are put
-- back. A trimmed entry's deltas (hash field '<runId>|<partition>' -> the band entries the commit
-- added) go with it; trimming a committed entry sets jobmeta 'historyTrimmed' (rewind then says
-- what it cannot rebuild). jobmeta 'historyRuns' counts the run summaries in the list (a list from
-- before partition commits holds only runs). The list is capped at size * 64 + 1024 entries whatever
-- they are (commits of runs that never ended).
local function historyDrop(deltas, jobmeta, e)
  if type(e.delta) == 'table' then
    for _, p in ipairs(e.delta) do redis.call('HDEL', deltas, tostring(e.runId) .. '|' .. p) end
  end
  if e.committed == true and type(e.state) == 'table' then redis.call('HSET', jobmeta, 'historyTrimmed', tostring(e.runId)) end
end

local function historyDecode(raw)
  local ok, e = pcall(cjson.decode, raw)
  if ok and type(e) == 'table' then return e end
  return {}
end

local function historyPush(history, deltas, jobmeta, entryJson, size, isRun)
  local nRuns = tonumber(redis.call('HGET', jobmeta, 'historyRuns') or redis.call('LLEN', history))
  redis.call('LPUSH', history, entryJson)
  if isRun then nRuns = nRuns + 1 end
  local popped, gone = {}, {}
  while nRuns > size do
    local old = redis.call('RPOP', history)
    if not old then nRuns = 0 break end
    local e = historyDecode(old)
    popped[#popped + 1] = {old, e}
    if e.kind ~= 'commit' then
      nRuns = nRuns - 1
      if e.runId then gone[tostring(e.runId)] = true end
    end
  end
  -- Newest first, so that the oldest kept entry ends at the tail again.
  for i = #popped, 1, -1 do
    local old, e = popped[i][1], popped[i][2]
    if e.kind == 'commit' and e.runId and not gone[tostring(e.runId)] then
      redis.call('RPUSH', history, old)
    else
      historyDrop(deltas, jobmeta, e)
    end
  end
  local hardCap = size * 64 + 1024
  while redis.call('LLEN', history) > hardCap do
    local e = historyDecode(redis.call('RPOP', history))
    if e.kind ~= 'commit' then nRuns = nRuns - 1 end
    historyDrop(deltas, jobmeta, e)
  end
  redis.call('HSET', jobmeta, 'historyRuns', nRuns)
end
