-- Pushes an entry on the job's history: a run's summary (isRun) or one partition commit of a run
-- (pushed before its run's summary). The history keeps `size` runs: when it holds more, the oldest
-- entries go, up to and including the oldest run summary. A trimmed entry's deltas (hash field
-- '<runId>|<partition>' -> the band entries the commit added) go with it; trimming a committed
-- entry sets jobmeta 'historyTrimmed' (rewind then says what it cannot rebuild). jobmeta
-- 'historyRuns' counts the run summaries in the list (a list from before partition commits holds
-- only runs).
local function historyPush(history, deltas, jobmeta, entryJson, size, isRun)
  local nRuns = tonumber(redis.call('HGET', jobmeta, 'historyRuns') or redis.call('LLEN', history))
  redis.call('LPUSH', history, entryJson)
  if isRun then nRuns = nRuns + 1 end
  -- A run may commit many partitions: the list is capped anyway.
  local hardCap = size * 64 + 1024
  while nRuns > size or redis.call('LLEN', history) > hardCap do
    local old = redis.call('RPOP', history)
    if not old then nRuns = 0 break end
    local ok, e = pcall(cjson.decode, old)
    if ok and type(e) == 'table' then
      if e.kind ~= 'commit' then nRuns = nRuns - 1 end
      if type(e.delta) == 'table' then
        for _, p in ipairs(e.delta) do redis.call('HDEL', deltas, tostring(e.runId) .. '|' .. p) end
      end
      if e.committed == true and type(e.state) == 'table' then redis.call('HSET', jobmeta, 'historyTrimmed', tostring(e.runId)) end
    else
      nRuns = nRuns - 1
    end
  end
  redis.call('HSET', jobmeta, 'historyRuns', nRuns)
end
