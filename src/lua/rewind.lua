-- A node delivered offsets that Redis no longer has in the same epoch: Redis
-- came back from a restart without its newest writes. Reusing those offsets
-- would make clients drop new messages as duplicates, so the room starts a
-- new epoch (unless another node did so already).
-- KEYS: 1 meta, 2 stream
-- ARGV: 1 epoch the node delivered, 2 newest offset it delivered,
--       3 new epoch, 4 meta ttl ms
-- Returns {epoch, offset} as they are afterwards.
local epoch = redis.call('HGET', KEYS[1], 'e')
local offset = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
if epoch == ARGV[1] and offset < tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', ARGV[3], 'o', 0)
  keep_for(KEYS[1], ARGV[4])
  return {ARGV[3], 0}
end
return {epoch or '', offset}
