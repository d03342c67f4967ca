-- Publishes one message: offset increment, history append and pub/sub
-- publish in one atomic step.
-- KEYS: 1 meta, 2 stream, 3 idempotency key (unused when ARGV[6] is 0)
-- ARGV: 1 epoch candidate, 2 body, 3 channel, 4 max messages,
--       5 history ttl ms, 6 idempotency ttl ms (0: no key), 7 now ms,
--       8 message id, 9 meta ttl ms
-- Returns {duplicate (0 or 1), "epoch offset id timestamp"}.
local epoch = room_epoch(KEYS[1], KEYS[2], ARGV[1])
local keyed = tonumber(ARGV[6]) > 0
if keyed then
  local first = redis.call('GET', KEYS[3])
  if first then
    return {1, first}
  end
end
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
trim_old(KEYS[2], tonumber(ARGV[7]) - tonumber(ARGV[5]))
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], string.format('%d-0', offset),
  'd', ARGV[2], 't', ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
keep_for(KEYS[1], ARGV[9])
local result = string.format('%s %d %s %s', epoch, offset, ARGV[8], ARGV[7])
if keyed then
  redis.call('SET', KEYS[3], result, 'PX', ARGV[6])
end
redis.call('PUBLISH', ARGV[3], string.format('m%s %d ', epoch, offset) .. ARGV[2])
return {0, result}
