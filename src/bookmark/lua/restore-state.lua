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
    then 5 keys per partition (meta, done, lease, leaserun, retry): every partition that has
    state now or in the target
    ARGV[1] lastRunId   ("" for a reset)
    ARGV[2] targetJson  `{pid: {wm, hwm, floor, files, band: [[key, lm], ...]}}`, or "" for a reset
    ARGV[3..] the partition ids
  Output: {1, version} or {0, running run ids...}.
  The epoch goes up (it survives a reset), so that a run started before cannot commit after.
]]
-- @include redis-now
local jobmeta, parts, active = KEYS[1], KEYS[2], KEYS[3]
local lastRunId, targetJson = ARGV[1], ARGV[2]
local now = redisNowMs()
local running = redis.call('ZRANGEBYSCORE', active, '(' .. now, '+inf')
if #running > 0 then
  local out = {0}
  for _, r in ipairs(running) do out[#out + 1] = r end
  return out
end
local epoch = tonumber(redis.call('HGET', jobmeta, 'epoch') or '0') + 1
local target = {}
if targetJson ~= '' then target = cjson.decode(targetJson) end
for i = 3, #ARGV do
  local pid = ARGV[i]
  local base = 7 + (i - 3) * 5
  local meta, done, lease, leaserun, retry = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5]
  redis.call('DEL', meta, done, lease, leaserun)
  if targetJson == '' then redis.call('DEL', retry) end
  local t = target[pid]
  if t then
    local fields = {'updatedAt', now}
    for _, f in ipairs({'wm', 'hwm', 'floor', 'files'}) do
      if t[f] ~= nil and t[f] ~= cjson.null then fields[#fields + 1] = f; fields[#fields + 1] = string.format('%d', tonumber(t[f])) end
    end
    redis.call('HSET', meta, unpack(fields))
    for _, e in ipairs(t.band or {}) do redis.call('ZADD', done, e[2], e[1]) end
    redis.call('SADD', parts, pid)
  else
    redis.call('SREM', parts, pid)
  end
end
if targetJson == '' then
  redis.call('DEL', jobmeta, parts, KEYS[4], KEYS[5], KEYS[6], KEYS[7])
  redis.call('HSET', jobmeta, 'epoch', epoch)
  return {1, 0}
end
redis.call('HSET', jobmeta, 'epoch', epoch)
local version = redis.call('HINCRBY', jobmeta, 'version', 1)
redis.call('HSET', jobmeta, 'lastRunId', lastRunId, 'updatedAt', now)
return {1, version}
