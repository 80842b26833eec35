--[[
  Drops one lease of an ended run (its file was deleted), unless another run took it over since.
  Input:
    KEYS[1] lease     zset
    KEYS[2] leaserun  hash
    ARGV[1] key
    ARGV[2] owner     the run id expected to hold it
  Output: 1 when dropped, else 0.
]]
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
