--[[
  Puts events a run took but did not settle back in line (its file was over the bound, held by
  another run, or its partition did not commit), at their first arrival time. A newer event of the
  same object that arrived meanwhile wins. Idempotent: an event already returned is gone from the
  run's hash.
  Input:
    KEYS[1] pending    hash: object key -> event JSON
    KEYS[2] order      zset: object key -> arrival (ms)
    KEYS[3] runEvents  hash: the run's events
    ARGV    object keys
  Output: how many were put back.
]]
local pending, order, mine = KEYS[1], KEYS[2], KEYS[3]
local n = 0
for _, k in ipairs(ARGV) do
  local ev = redis.call('HGET', mine, k)
  if ev then
    if redis.call('HSETNX', pending, k, ev) == 1 then
      local at = cjson.decode(ev).at or 0
      redis.call('ZADD', order, 'NX', at, k)
      n = n + 1
    end
    redis.call('HDEL', mine, k)
  end
end
return n
