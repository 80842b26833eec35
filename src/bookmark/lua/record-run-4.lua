--[[
  Pushes a run's summary on the job's history (after its partition commits, if any), trimming it
  (and the deltas of the runs trimmed) to historySize runs, once per run: the run record's
  'finished' field makes a retried finish step a no-op.
  Input:
    KEYS[1] history  list
    KEYS[2] deltas   hash: '<runId>|<partition>' -> band entries a commit added
    KEYS[3] jobmeta  hash
    KEYS[4] run      hash: the run record (field 'finished')
    ARGV[1] the run summary (JSON)
    ARGV[2] historySize
  Output: 1 when pushed, 0 when the run was recorded already.
]]
-- @include history
if redis.call('HSETNX', KEYS[4], 'finished', '1') == 0 then return 0 end
historyPush(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), true)
return 1
