--[[
  Pushes a run that committed nothing (failed, empty, disable or pause) on the job's history,
  trimming it (and the deltas of the runs trimmed) to historySize.
  Input:
    KEYS[1] history  list
    KEYS[2] deltas   hash: '<runId>|<partition>' -> band entries a run added
    KEYS[3] jobmeta  hash
    ARGV[1] the run summary (JSON)
    ARGV[2] historySize
  Output: 1.
]]
-- @include history
historyPush(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]))
return 1
