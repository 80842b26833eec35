--[[
  Replaces a job's bookmark state atomically (rewind and reset), refusing while a run of the job
  is in progress. (Variable key count: the caller passes the number of keys.)
  Input:
    KEYS[1] jobmeta     hash
    KEYS[2] parts       set
    KEYS[3] active      zset: run id -> slot expiry
    KEYS[4] history     list   (deleted by a reset)
    KEYS[5] failures    hash   (deleted by a reset)
    KEYS[6] deadletters hash   (deleted by a reset)
    KEYS[7] skipped     hash   (deleted by a reset)
    KEYS[8] deltas      hash   (deleted by a reset)
    KEYS[9] lexical     zset   (deleted by a reset and a rewind: the next lexical run lists in full)
    KEYS[10] leasedp    set    (deleted by a reset)
    then 7 keys per partition (meta, band, bidx, lease, leaserun, retry, robbed)
    ARGV[1] lastRunId   ("" for a reset)
    ARGV[2] mode        'reset' or 'rewind'
    ARGV[3..] 4 per partition: id, target meta JSON {wm, hwm, floor, files, keep, edge} ('' deletes the
            partition), band entries to remove, band entries to add (concatenated 15-byte
            entries, see includes/band.lua)
  Output: {1, version} or {0, running run ids...}.
  A rewind rebuilds each partition from its current state: the entries later runs added go, the
  entries of earlier runs that pruning dropped since come back, the cursors are the target's,
  and leases go (no run is in progress). The epoch goes up (it survives a reset), so that a run
  started before cannot commit after.
]]
-- @include redis-now
-- @include band
local jobmeta, parts, active = KEYS[1], KEYS[2], KEYS[3]
local lastRunId, mode = ARGV[1], ARGV[2]
local now = redisNowMs()
local running = redis.call('ZRANGEBYSCORE', active, '(' .. now, '+inf')
if #running > 0 then
  local out = {0}
  for _, r in ipairs(running) do out[#out + 1] = r end
  return out
end
local epoch = tonumber(redis.call('HGET', jobmeta, 'epoch') or '0') + 1
redis.call('DEL', KEYS[9])
local nParts = (#ARGV - 2) / 4
for i = 1, nParts do
  local a = 2 + (i - 1) * 4
  local pid, targetJson, remove, add = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local base = 10 + (i - 1) * 7
  local meta, band, bidx, lease, leaserun, retry = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5], KEYS[base + 6]
  redis.call('DEL', lease, leaserun, KEYS[base + 7])
  if mode == 'reset' then redis.call('DEL', retry) end
  if targetJson == '' then
    redis.call('DEL', meta, band, bidx)
    redis.call('SREM', parts, pid)
  else
    local t = cjson.decode(targetJson)
    for j = 1, #remove, 15 do bandRemove(band, meta, string.sub(remove, j, j + 14)) end
    local fields, counts, records = groupEntries(add)
    bandAppend(band, bidx, meta, fields, counts, records)
    local fields = {'updatedAt', now, 'lastRunId', lastRunId}
    for _, f in ipairs({'wm', 'hwm', 'floor', 'files', 'keep'}) do
      if t[f] ~= nil and t[f] ~= cjson.null then
        fields[#fields + 1] = f
        fields[#fields + 1] = string.format('%d', tonumber(t[f]))
      else
        redis.call('HDEL', meta, f)
      end
    end
    redis.call('HSET', meta, unpack(fields))
    if t.edge ~= nil and t.edge ~= cjson.null then bandPrune(band, bidx, meta, tonumber(t.edge)) end
    redis.call('SADD', parts, pid)
  end
end
if mode == 'reset' then
  redis.call('DEL', jobmeta, parts, KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[10])
  redis.call('HSET', jobmeta, 'epoch', epoch)
  return {1, 0}
end
redis.call('HSET', jobmeta, 'epoch', epoch)
local version = redis.call('HINCRBY', jobmeta, 'version', 1)
redis.call('HSET', jobmeta, 'lastRunId', lastRunId, 'updatedAt', now)
return {1, version}
