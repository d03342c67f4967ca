-- Reads a room's position and the messages after an offset: joins (with or
-- without recovery) and a node filling a gap in its live feed.
-- KEYS: 1 meta, 2 stream
-- ARGV: 1 epoch candidate ('' : do not create the room), 2 after (-1: no
--       messages), 3 most messages, 4 now ms, 5 history ttl ms, 6 meta ttl
--       ms, 7 epoch the messages must belong to ('' : any)
-- Returns {epoch ('' when the room does not exist), offset, off1, body1, ...}.
local epoch = room_epoch(KEYS[1], KEYS[2], ARGV[1])
if not epoch then
  return {'', 0}
end
keep_for(KEYS[1], ARGV[6])
trim_old(KEYS[2], tonumber(ARGV[4]) - tonumber(ARGV[5]))
local offset = tonumber(redis.call('HGET', KEYS[1], 'o'))
local out = {epoch, offset}
local after = tonumber(ARGV[2])
if after >= 0 and (ARGV[7] == '' or ARGV[7] == epoch) then
  append_range(out, KEYS[2], after + 1, offset, tonumber(ARGV[3]))
end
return out
