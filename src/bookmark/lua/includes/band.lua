-- The compact band (state format 2); the TypeScript side of the same layout is src/bookmark/band.ts.
-- band hash: 5-byte field (u32 second + bucket 0..31 of the key hash) -> concatenated 10-byte
-- records (8-byte SHA-1 prefix of the key + u16 millisecond); 4-byte field (the second) -> its
-- record count. bidx zset: second -> second (pruning by score). meta 'bandn': records in the band.
local function u32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

local function fromU32(s)
  local a, b, c, d = string.byte(s, 1, 4)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- A file's field, record, hash and millisecond.
local function entryOf(key, lm)
  local hex = redis.sha1hex(key)
  local bytes = {}
  for i = 1, 8 do bytes[i] = tonumber(string.sub(hex, 2 * i - 1, 2 * i), 16) end
  local h = string.char(unpack(bytes))
  local sec = math.floor(lm / 1000)
  local ms = lm - sec * 1000
  return u32(sec) .. string.char(math.floor(bytes[1] / 8)), h .. string.char(math.floor(ms / 256), ms % 256), h, ms
end

-- Whether a field's records hold hash h at millisecond ms or later.
local function recordsHold(v, h, ms)
  if not v then return false end
  local i = string.find(v, h, 1, true)
  while i do
    if (i - 1) % 10 == 0 then
      local a, b = string.byte(v, i + 8, i + 9)
      if a * 256 + b >= ms then return true end
    end
    i = string.find(v, h, i + 1, true)
  end
  return false
end

-- Whether the band holds a file at its last-modified time or later (within that second).
local function bandHolds(band, key, lm)
  local f, _, h, ms = entryOf(key, lm)
  return recordsHold(redis.call('HGET', band, f), h, ms)
end

-- Calls a variadic command with fixed leading arguments over a long list, in chunks (Lua's
-- unpack has a stack limit); returns the concatenated replies when they are lists.
local function chunked(cmd, key, list, step)
  local out = {}
  for i = 1, #list, step do
    local args = {}
    for j = i, math.min(#list, i + step - 1) do args[#args + 1] = list[j] end
    local r = redis.call(cmd, key, unpack(args))
    if type(r) == 'table' then for _, x in ipairs(r) do out[#out + 1] = x end end
  end
  return out
end

-- Adds records to the band, grouped by the caller: `fields` (5 bytes each, distinct), `counts`
-- (u32 per field) and `records` (10 bytes each, grouped in field order); one HMGET and one HSET
-- for all fields (in chunks), and the per-second counts, the seconds index and meta 'bandn'
-- follow. Records the band already holds are left out; returns nil (every entry added: the caller's entries are the delta) or the
-- entries added (a string of 15-byte entries), and the count added.
local function bandAppend(band, bidx, meta, fields, counts, records)
  local list = {}
  for o = 1, #fields, 5 do list[#list + 1] = string.sub(fields, o, o + 4) end
  if #list == 0 then return nil, 0 end
  local values = chunked('HMGET', band, list, 1000)
  local kept, dropped = {}, false
  local off = 1
  for i, f in ipairs(list) do
    local c = fromU32(string.sub(counts, 4 * i - 3, 4 * i))
    local recs = string.sub(records, off, off + c * 10 - 1)
    off = off + c * 10
    local v = values[i]
    if v and v ~= '' then
      local parts, some = {}, false
      for o = 1, #recs, 10 do
        local r = string.sub(recs, o, o + 9)
        local a, b = string.byte(r, 9, 10)
        if recordsHold(v, string.sub(r, 1, 8), a * 256 + b) then some = true else parts[#parts + 1] = r end
      end
      if some then
        recs = table.concat(parts)
        dropped = true
      end
    end
    kept[i] = recs
  end
  local writes, perSecond, index = {}, {}, {}
  local n = 0
  for i, f in ipairs(list) do
    local recs = kept[i]
    if #recs > 0 then
      writes[#writes + 1] = f
      writes[#writes + 1] = (values[i] or '') .. recs
      local sec = string.sub(f, 1, 4)
      perSecond[sec] = (perSecond[sec] or 0) + #recs / 10
      n = n + #recs / 10
    end
  end
  if #writes > 0 then chunked('HSET', band, writes, 1000) end
  for sec, c in pairs(perSecond) do
    redis.call('HINCRBY', band, sec, c)
    local x = fromU32(sec)
    index[#index + 1] = x
    index[#index + 1] = x
  end
  if #index > 0 then chunked('ZADD', bidx, index, 1000) end
  if n > 0 then redis.call('HINCRBY', meta, 'bandn', n) end
  if not dropped then return nil, n end
  local added = {}
  for i, f in ipairs(list) do
    local recs = kept[i]
    for o = 1, #recs, 10 do added[#added + 1] = f .. string.sub(recs, o, o + 9) end
  end
  return table.concat(added), n
end

-- Groups concatenated 15-byte entries (field .. record) by field, as bandAppend takes them.
local function groupEntries(entries)
  local order, groups = {}, {}
  for o = 1, #entries, 15 do
    local f = string.sub(entries, o, o + 4)
    local g = groups[f]
    if not g then g = {}; groups[f] = g; order[#order + 1] = f end
    g[#g + 1] = string.sub(entries, o + 5, o + 14)
  end
  local counts, records = {}, {}
  for _, f in ipairs(order) do
    counts[#counts + 1] = u32(#groups[f])
    records[#records + 1] = table.concat(groups[f])
  end
  return table.concat(order), table.concat(counts), table.concat(records)
end

-- Removes one record (field .. record) from the band when present; returns 1 when removed.
local function bandRemove(band, meta, e)
  local f, r = string.sub(e, 1, 5), string.sub(e, 6, 15)
  local v = redis.call('HGET', band, f)
  if not v then return 0 end
  local i = string.find(v, r, 1, true)
  while i and (i - 1) % 10 ~= 0 do i = string.find(v, r, i + 1, true) end
  if not i then return 0 end
  v = string.sub(v, 1, i - 1) .. string.sub(v, i + 10)
  if v == '' then redis.call('HDEL', band, f) else redis.call('HSET', band, f, v) end
  local s = string.sub(f, 1, 4)
  if redis.call('HINCRBY', band, s, -1) <= 0 then redis.call('HDEL', band, s) end
  redis.call('HINCRBY', meta, 'bandn', -1)
  return 1
end

-- Drops every record of one second; returns how many there were.
local function dropSecond(band, sec)
  local s = u32(sec)
  local n = tonumber(redis.call('HGET', band, s) or '0')
  local fields = {s}
  for b = 0, 31 do fields[#fields + 1] = s .. string.char(b) end
  redis.call('HDEL', band, unpack(fields))
  return n
end

-- Prunes the seconds wholly below edgeMs (by score: only what falls out is touched).
local function bandPrune(band, bidx, meta, edgeMs)
  local edgeSec = math.floor(edgeMs / 1000)
  local secs = redis.call('ZRANGEBYSCORE', bidx, '-inf', '(' .. edgeSec)
  if #secs == 0 then return 0 end
  local removed = 0
  for _, s in ipairs(secs) do removed = removed + dropSecond(band, tonumber(s)) end
  redis.call('ZREMRANGEBYSCORE', bidx, '-inf', '(' .. edgeSec)
  redis.call('HINCRBY', meta, 'bandn', -removed)
  return removed
end

-- Keeps the band at most `cap` records: drops its oldest seconds and raises the floor to the
-- start of the oldest second kept, never past the oldest lease (ml) nor past the watermark (the
-- newest second always stays, so a late file above the watermark is never below the floor).
-- Files of one second are never split. Returns the new floor or nil.
local function bandCap(band, bidx, meta, cap, ml, wm)
  local n = tonumber(redis.call('HGET', meta, 'bandn') or '0')
  local floor = nil
  while n > cap do
    local first = redis.call('ZRANGE', bidx, 0, 0)
    if #first == 0 then break end
    local s = tonumber(first[1])
    local cut = (s + 1) * 1000
    if ml and ml < cut then break end
    if cut > wm + 1 then break end
    n = n - dropSecond(band, s)
    redis.call('ZREM', bidx, first[1])
    floor = cut
  end
  if floor then
    redis.call('HSET', meta, 'bandn', n, 'floor', string.format('%d', floor))
  end
  return floor
end
