-- Pushes a run summary on the job's history and trims it to `size` entries. A trimmed entry's
-- deltas (hash field '<runId>|<partition>' -> the band entries the run added there) go with it;
-- trimming a committed run sets jobmeta 'historyTrimmed' (rewind then says what it cannot rebuild).
local function historyPush(history, deltas, jobmeta, entryJson, size)
  redis.call('LPUSH', history, entryJson)
  while redis.call('LLEN', history) > size do
    local old = redis.call('RPOP', history)
    local ok, e = pcall(cjson.decode, old)
    if ok and type(e) == 'table' then
      if type(e.delta) == 'table' then
        for _, p in ipairs(e.delta) do redis.call('HDEL', deltas, tostring(e.runId) .. '|' .. p) end
      end
      if e.committed == true then redis.call('HSET', jobmeta, 'historyTrimmed', tostring(e.runId)) end
    end
  end
end
