--[[
  Pushes a run's summary on the job's history (after its partition commits, if any), trimming it
  (and the deltas of the runs trimmed) to historySize runs, and publishes the run's end on the
  events stream, in one step and once per run: the run record's 'finished' field makes a retried
  finish step a no-op (so an end is never lost between the two, nor published twice).
  Input:
    KEYS[1] history  list
    KEYS[2] deltas   hash: '<runId>|<partition>' -> band entries a commit added
    KEYS[3] jobmeta  hash
    KEYS[4] run      hash: the run record (field 'finished')
    KEYS[5] events   stream: run ends (`after` triggers, the API)
    ARGV[1] the run summary (JSON)
    ARGV[2] historySize
    ARGV[3] the event's fields (JSON object of strings), or '' to publish nothing
    ARGV[4] the stream's approximate maximum length
    ARGV[5] '1' to leave the history alone (a reprocess run: not a bookmark run)
  Output: 1 when pushed, 0 when the run was recorded already.
]]
-- @include history
if redis.call('HSETNX', KEYS[4], 'finished', '1') == 0 then return 0 end
if ARGV[5] ~= '1' then historyPush(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), true) end
if ARGV[3] ~= '' then
  local args = {}
  for k, v in pairs(cjson.decode(ARGV[3])) do
    args[#args + 1] = k
    args[#args + 1] = tostring(v)
  end
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', unpack(args))
end
return 1
