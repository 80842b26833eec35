-- The time in epoch ms by Redis' own clock: every slot and lease is judged by it, never by a host's.
local function redisNowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
