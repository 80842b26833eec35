-- The band's lower edge of a partition: files older than this count as done (settled).
-- It is max(wm - bandMs, floor); a partition never committed has no edge (-1e308).
-- The TypeScript mirror for the planner is bandFloor() in src/bookmark/rules.ts.
local function bandEdge(meta, bandMs)
  local m = redis.call('HMGET', meta, 'wm', 'floor')
  local edge = -1e308
  if m[1] then edge = tonumber(m[1]) - bandMs end
  if m[2] and tonumber(m[2]) > edge then edge = tonumber(m[2]) end
  return edge
end

