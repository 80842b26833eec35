/**
 * Replaces a job's whole bookmark state atomically (rewind and reset), refusing while a run of the
 * job is in progress. KEYS: jobmeta, parts, active, then 4 keys per partition (meta, done, lease,
 * leaserun): every partition that has state now or in the target. ARGV: nowMs, lastRunId ("" for
 * reset), targetJson (`{pid: {wm, hwm, floor, files, band: [[key, lm], ...]}}`, or "" to delete
 * everything, history included: then KEYS[4 + 4n] is the history list), then the partition ids.
 * Returns {1, version} or {0, running run ids...}.
 */
export const RESTORE_STATE = `
local jobmeta, parts, active = KEYS[1], KEYS[2], KEYS[3]
local now, lastRunId, targetJson = ARGV[1], ARGV[2], ARGV[3]
local running = redis.call('ZRANGEBYSCORE', active, '(' .. now, '+inf')
if #running > 0 then
  local out = {0}
  for _, r in ipairs(running) do out[#out + 1] = r end
  return out
end
local epoch = tonumber(redis.call('HGET', jobmeta, 'epoch') or '0') + 1
local target = {}
if targetJson ~= '' then target = cjson.decode(targetJson) end
for i = 4, #ARGV do
  local pid = ARGV[i]
  local base = 3 + (i - 4) * 4
  local meta, done, lease, leaserun = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]
  redis.call('DEL', meta, done, lease, leaserun)
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
  redis.call('DEL', jobmeta, parts, KEYS[#KEYS])
  -- The epoch survives a reset, so that a run started before it cannot commit after it.
  redis.call('HSET', jobmeta, 'epoch', epoch)
  return {1, 0}
end
redis.call('HSET', jobmeta, 'epoch', epoch)
local version = redis.call('HINCRBY', jobmeta, 'version', 1)
redis.call('HSET', jobmeta, 'lastRunId', lastRunId, 'updatedAt', now)
return {1, version}
`;
