--[[
  Puts events a run took but did not settle back in line (its file was over the bound, held by
  another run, or its partition did not commit), at their arrival time, or not before ARGV[1]
  when given (an object another run holds, a partition that failed: retried later, so that the
  events trigger does not start run after run for them). A newer event of the same object that
  arrived meanwhile wins. Idempotent: an event already returned is gone from the run's hash.
  Input:
    KEYS[1] pending    hash: object key -> event JSON
    KEYS[2] order      zset: object key -> arrival (ms)
    KEYS[3] runEvents  hash: the run's events
    ARGV[1] not before (ms; 0: the event's arrival)
    ARGV[2..] object keys
  Output: how many were put back.
]]
local pending, order, mine = KEYS[1], KEYS[2], KEYS[3]
local n = 0
local notBefore = tonumber(ARGV[1])
for i = 2, #ARGV do
  local k = ARGV[i]
  local ev = redis.call('HGET', mine, k)
  if ev then
    if redis.call('HSETNX', pending, k, ev) == 1 then
      local at = cjson.decode(ev).at or 0
      if notBefore > at then at = notBefore end
      redis.call('ZADD', order, 'NX', at, k)
      n = n + 1
    end
    redis.call('HDEL', mine, k)
  end
end
return n
