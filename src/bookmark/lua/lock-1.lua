--[[
  Takes, renews or releases an owned lock (the job's planning lock).
  Input:
    KEYS[1] lock     string: the owner's id
    ARGV[1] op       'take' | 'keep' | 'release'
    ARGV[2] owner
    ARGV[3] ttlMs    for take and keep
  Output: 1 when done (taken, renewed, released), 0 when the lock is someone else's (or gone, for keep).
]]
local lock, op, owner = KEYS[1], ARGV[1], ARGV[2]
if op == 'take' then
  if redis.call('SET', lock, owner, 'PX', tonumber(ARGV[3]), 'NX') then return 1 end
  return 0
end
if redis.call('GET', lock) ~= owner then return 0 end
if op == 'keep' then return redis.call('PEXPIRE', lock, tonumber(ARGV[3])) end
return redis.call('DEL', lock)
