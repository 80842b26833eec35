--[[
  Moves a run to another state when it is in one of the given states (compare-and-set, so that
  two processes, e.g. a stop and the run's own finish, never both win).
  Input:
    KEYS[1] run      hash: the run record
    ARGV[1] to       the new state
    ARGV[2] field    a field to set to Redis' time in ms with the move ('' for none)
    ARGV[3..] from   the states the move is allowed from
  Output: {1, previous state} when moved; {0, current state} when not ('' if the record is gone).
]]
-- @include redis-now
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return {0, ''} end
for i = 3, #ARGV do
  if ARGV[i] == cur then
    redis.call('HSET', KEYS[1], 'state', ARGV[1])
    if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], ARGV[2], redisNowMs()) end
    return {1, cur}
  end
end
return {0, cur}
