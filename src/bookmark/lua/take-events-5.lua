--[[
  An event-fed run takes the oldest pending events of its job (at most ARGV[1]), once: a retried
  plan step gets the same events back. The events move from the job's pending set to the run's
  own hash, so no other run takes them; the run's finish step drops those it settled and puts the
  others back (return-events-3.lua).
  Input:
    KEYS[1] pending    hash: object key -> event JSON
    KEYS[2] order      zset: object key -> arrival (ms)
    KEYS[3] runEvents  hash: the run's events (object key -> event JSON), plus the marker field "\0taken"
    KEYS[4] starting   string: the events run started and not yet planned (deleted when it is this run)
    KEYS[5] run        hash: the run record; nothing is taken unless its state is STARTING (a run
                       stopped or timed out while its plan step waited would never give them back)
    ARGV[1] n, ARGV[2] runId, ARGV[3] ttl (s) of the run's hash, ARGV[4] now (ms): events put back
            "not before" a later time wait until then
  Output: a flat list object key, event JSON, ... of the run's events.
]]
local pending, order, mine, starting = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HEXISTS', mine, '\0taken') == 0 and redis.call('HGET', KEYS[5], 'state') == 'STARTING' then
  local ks = redis.call('ZRANGEBYSCORE', order, '-inf', ARGV[4], 'LIMIT', 0, tonumber(ARGV[1]))
  for _, k in ipairs(ks) do
    local ev = redis.call('HGET', pending, k)
    if ev then redis.call('HSET', mine, k, ev) end
    redis.call('HDEL', pending, k)
    redis.call('ZREM', order, k)
  end
  redis.call('HSET', mine, '\0taken', '1')
  redis.call('EXPIRE', mine, tonumber(ARGV[3]))
end
if redis.call('GET', starting) == ARGV[2] then redis.call('DEL', starting) end
local all = redis.call('HGETALL', mine)
local out = {}
for i = 1, #all, 2 do
  if all[i] ~= '\0taken' then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
