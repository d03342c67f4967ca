-- One page of a room's history.
-- KEYS: 1 meta, 2 stream
-- ARGV: 1 epoch candidate, 2 limit, 3 before (0: none), 4 after (0: none),
--       5 now ms, 6 history ttl ms, 7 meta ttl ms
-- Returns {epoch, offset, has_more (0 or 1), off1, body1, ...}. With `after`
-- the page is the oldest `limit` messages after it; otherwise the newest
-- before `before`.
local epoch = room_epoch(KEYS[1], KEYS[2], ARGV[1])
keep_for(KEYS[1], ARGV[7])
trim_old(KEYS[2], tonumber(ARGV[5]) - tonumber(ARGV[6]))
local last = tonumber(redis.call('HGET', KEYS[1], 'o'))
local first = first_offset(KEYS[2])
local out = {epoch, last, 0}
if not first then
  return out
end
local limit = math.max(tonumber(ARGV[2]), 1)
local before = tonumber(ARGV[3])
local after = tonumber(ARGV[4])
local ceiling = last
if before > 0 then
  ceiling = math.min(last, before - 1)
end
if after > 0 then
  local lo = math.max(first, after + 1)
  if lo <= ceiling then
    local hi = math.min(ceiling, lo + limit - 1)
    append_range(out, KEYS[2], lo, hi, limit)
    if hi < ceiling then
      out[3] = 1
    end
  end
elseif ceiling >= first then
  local lo = math.max(first, ceiling - limit + 1)
  append_range(out, KEYS[2], lo, ceiling, limit)
  if lo > first then
    out[3] = 1
  end
end
return out
