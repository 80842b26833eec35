--[[
  Moves a partition's watermark over files a complete listing found all done (docs/events.md).
  Event-fed runs add their files to the band without moving the cursors (so that older files no
  listing has covered yet stay above the band edge); the next complete listing that finds every
  file up to time T done (or leased) moves hwm up to T, and wm as a commit would:
  wm = max(wm, min(hwm, oldest lease - 1)). The band is then pruned below the new edge, so the
  entries of event-fed runs do not pile up.
  Input:
    KEYS[1] jobmeta  hash: epoch
    KEYS[2] meta     hash: the partition's wm, hwm, floor, ...
    KEYS[3] band     hash
    KEYS[4] bidx     zset
    KEYS[5] lease    zset: leased key -> last-modified
    KEYS[6] parts    set: partitions with state
    ARGV[1] epoch    the bookmark epoch when the run that listed started
    ARGV[2] T        every listed file of the partition at or before T is done or leased (epoch ms)
    ARGV[3] bandMs
    ARGV[4] the partition id
  Output: 1 when the cursors moved, 0 otherwise (nothing to do, or reset/rewound since: epoch).
]]
-- @include redis-now
-- @include band
local jobmeta, meta, band, bidx, lease, parts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if tostring(redis.call('HGET', jobmeta, 'epoch') or '0') ~= ARGV[1] then return 0 end
local t, bandMs = tonumber(ARGV[2]), tonumber(ARGV[3])
local m = redis.call('HMGET', meta, 'wm', 'hwm', 'floor')
local hwm = tonumber(m[2] or '-1')
if t <= hwm then return 0 end
hwm = t
local wm = hwm
local minLease = redis.call('ZRANGE', lease, 0, 0, 'WITHSCORES')
if #minLease == 2 and tonumber(minLease[2]) - 1 < wm then wm = tonumber(minLease[2]) - 1 end
if m[1] and tonumber(m[1]) > wm then wm = tonumber(m[1]) end
if wm < 0 then return 0 end
local edge = wm - bandMs
if m[3] and tonumber(m[3]) > edge then edge = tonumber(m[3]) end
bandPrune(band, bidx, meta, edge)
redis.call('HSET', meta, 'hwm', string.format('%d', hwm), 'wm', string.format('%d', wm), 'updatedAt', redisNowMs())
redis.call('SADD', parts, ARGV[4])
return 1
