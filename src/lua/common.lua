-- Shared by the room scripts. A room is two keys: a meta hash (e = epoch,
-- o = newest offset) and a stream whose entry ids are "<offset>-0" with the
-- fields d (the RoomMessage without its offset) and t (publish time, ms).

local function entry_offset(id)
  return tonumber(string.match(id, '^(%d+)'))
end

-- Drops entries older than `cutoff` (ms) from the head of the stream. Works
-- in bounded batches so one call never runs long; the rest goes next time.
local function trim_old(stream, cutoff)
  for _ = 1, 8 do
    local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
    if #head == 0 then
      return
    end
    for _, entry in ipairs(head) do
      if tonumber(entry[2][4]) >= cutoff then
        redis.call('XTRIM', stream, 'MINID', entry[1])
        return
      end
    end
    local last = entry_offset(head[#head][1])
    redis.call('XTRIM', stream, 'MINID', string.format('%d-0', last + 1))
  end
end

-- The room's epoch, creating the room with `candidate` when Redis has no
-- state for it (a new room, or one whose state was lost or expired). Any
-- stream left from an earlier incarnation is dropped with it. Returns false
-- when the room does not exist and `candidate` is empty.
local function room_epoch(meta, stream, candidate)
  local epoch = redis.call('HGET', meta, 'e')
  if epoch then
    return epoch
  end
  if candidate == '' then
    return false
  end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', candidate, 'o', 0)
  return candidate
end

-- Extends a key's expiry to at least `ttl` ms; never shortens it.
local function keep_for(key, ttl)
  if redis.call('PTTL', key) < tonumber(ttl) then
    redis.call('PEXPIRE', key, ttl)
  end
end

-- Appends the entries with offsets in [lo, hi] (at most `count`) to `out` as
-- offset, body pairs, oldest first.
local function append_range(out, stream, lo, hi, count)
  if hi < lo or count <= 0 then
    return
  end
  local entries = redis.call('XRANGE', stream, string.format('%d-0', lo),
    string.format('%d-0', hi), 'COUNT', count)
  for _, entry in ipairs(entries) do
    out[#out + 1] = entry_offset(entry[1])
    out[#out + 1] = entry[2][2]
  end
end

local function first_offset(stream)
  local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #head == 0 then
    return false
  end
  return entry_offset(head[1][1])
end
