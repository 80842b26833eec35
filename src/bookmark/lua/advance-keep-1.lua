--[[
  Moves a lexical job's 'keep' (the band edge at its last full listing) up after a full listing
  that found nothing to take: every file down to the old 'keep' was checked against the band.
  Input:
    KEYS[1] meta   hash: the partition's wm, floor, keep, ...
    ARGV[1] edge   the band edge the listing was planned with (epoch ms)
  Output: 1 when 'keep' moved, else 0. A partition never committed (no wm) is left alone.
]]
if not redis.call('HGET', KEYS[1], 'wm') then return 0 end
local keep = redis.call('HGET', KEYS[1], 'keep')
local edge = tonumber(ARGV[1])
if keep and tonumber(keep) >= edge then return 0 end
redis.call('HSET', KEYS[1], 'keep', string.format('%d', edge))
return 1
