--[[
  Stores the object events of one request for one job (docs/events.md), durably and at most once
  per delivery: a delivery already seen in the last 24 h (same bucket, key and sequencer) counts as
  a duplicate. Several events of one object while it waits count as one pending object (the newest
  event is kept; the object keeps its place in line). Refuses the whole request for this job when
  it would hold more than `max` pending objects, before writing anything.
  Input:
    KEYS[1] pending  hash: object key -> event JSON
    KEYS[2] order    zset: object key -> arrival (ms)
    KEYS[3..] one 'seen' key per event (string, expiring after ARGV[3] seconds)
    ARGV[1] max      pending objects at most
    ARGV[2] now      arrival time (ms)
    ARGV[3] ttl      seconds a delivery is remembered
    then per event: object key, event JSON
  Output: {accepted, duplicates} or {-1, pending} when full.
]]
local pending, order = KEYS[1], KEYS[2]
local n = #KEYS - 2
local max, now, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local count = redis.call('ZCARD', order)
local grow = 0
local fresh = {}
for i = 1, n do
  local k = ARGV[2 + 2 * i]
  if redis.call('EXISTS', KEYS[2 + i]) == 0 and redis.call('HEXISTS', pending, k) == 0 and not fresh[k] then
    fresh[k] = true
    grow = grow + 1
  end
end
if count + grow > max then return {-1, count} end
local accepted, dups = 0, 0
for i = 1, n do
  if redis.call('SET', KEYS[2 + i], '1', 'NX', 'EX', ttl) then
    local k = ARGV[2 + 2 * i]
    redis.call('HSET', pending, k, ARGV[3 + 2 * i])
    redis.call('ZADD', order, 'NX', now, k)
    accepted = accepted + 1
  else
    dups = dups + 1
  end
end
return {accepted, dups}
