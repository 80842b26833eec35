--[[
  Records a batch as finally failed on its run, once (a worker's failed event and the run's own
  check of BullMQ may both report it).
  Input:
    KEYS[1] run        hash: the run record
    KEYS[2] runErrors  list
    ARGV[1] batchId
    ARGV[2] reason
    ARGV[3] kind       used when no attempt of the batch recorded what it blames (finish-batch's
                       batchkind): 'job' (the job or its environment, e.g. workers that kept dying)
    ARGV[4] ttlSeconds
    ARGV[5] maxErrors
  Output: 1 when recorded now, 0 when it already was.
]]
local run, runErrors = KEYS[1], KEYS[2]
if redis.call('HSETNX', run, 'batch:' .. ARGV[1], 'failed') == 0 then return 0 end
redis.call('HINCRBY', run, 'batchesFailed', 1)
local kind = redis.call('HGET', run, 'batchkind:' .. ARGV[1]) or ARGV[3]
if kind == 'job' then
  redis.call('HSETNX', run, 'jobFailure', redis.call('HGET', run, 'batchwhy:' .. ARGV[1]) or ARGV[2])
end
redis.call('LPUSH', runErrors, 'batch ' .. ARGV[1] .. ' failed: ' .. ARGV[2])
redis.call('LTRIM', runErrors, 0, tonumber(ARGV[5]) - 1)
redis.call('EXPIRE', runErrors, tonumber(ARGV[4]))
redis.call('EXPIRE', run, tonumber(ARGV[4]))
return 1
