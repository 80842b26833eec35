/**
 * Records what one batch attempt wrote, for its run to commit later, in one atomic step.
 * KEYS: staged zset (run, partition), stagedparts set (run), run hash.
 * ARGV: partitionId, commitId, finalBatchId ("" unless the whole batch is now done), ttlSeconds,
 * then key, lastModified, size triples.
 *
 * A replayed commitId changes nothing; a final batch id is counted once as a finished batch.
 * Returns the number of files newly staged.
 */
export const STAGE_BATCH = `
local staged, parts, run = KEYS[1], KEYS[2], KEYS[3]
local pid, commitId, final, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('HSETNX', run, 'commit:' .. commitId, '1') == 0 then return 0 end
local n, bytes = 0, 0
for i = 5, #ARGV, 3 do
  local added = redis.call('ZADD', staged, tonumber(ARGV[i + 1]), ARGV[i])
  n = n + added
  -- A duplicated batch (two workers on one stalled batch) must not count a file's bytes twice.
  if added == 1 then bytes = bytes + tonumber(ARGV[i + 2]) end
end
if #ARGV >= 5 then
  redis.call('SADD', parts, pid)
  redis.call('EXPIRE', staged, ttl)
  redis.call('EXPIRE', parts, ttl)
end
redis.call('HINCRBY', run, 'filesStaged', n)
redis.call('HINCRBY', run, 'bytesStaged', bytes)
if final ~= '' and redis.call('HSETNX', run, 'batch:' .. final, 'ok') == 1 then
  redis.call('HINCRBY', run, 'batchesOk', 1)
end
redis.call('EXPIRE', run, ttl)
return n
`;
