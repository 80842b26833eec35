--[[
  Puts a catalog registration that failed back in line: its entry (with the attempt counted and
  the error) is rewritten and its next attempt set delayMs from now (Redis clock). An entry done
  meanwhile (by another worker) stays done.
  Input:
    KEYS[1] reg    hash: '<runId>|<partition>' -> the entry
    KEYS[2] due    zset: '<runId>|<partition>' -> next attempt (epoch ms)
    ARGV[1] field
    ARGV[2] entry  the entry as rewritten (JSON)
    ARGV[3] delayMs
  Output: 1 when put back, 0 when the entry is gone.
]]
-- @include redis-now
local reg, due = KEYS[1], KEYS[2]
if redis.call('HEXISTS', reg, ARGV[1]) == 0 then return 0 end
redis.call('HSET', reg, ARGV[1], ARGV[2])
redis.call('ZADD', due, redisNowMs() + tonumber(ARGV[3]), ARGV[1])
return 1
