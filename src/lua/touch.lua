-- A node with local subscribers keeps the room's state alive and learns its
-- newest offset (to notice messages its pub/sub feed missed).
-- KEYS: 1 meta
-- ARGV: 1 meta ttl ms
-- Returns {epoch ('' when Redis has no state for the room), offset}.
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  return {'', 0}
end
keep_for(KEYS[1], ARGV[1])
return {epoch, tonumber(redis.call('HGET', KEYS[1], 'o'))}
