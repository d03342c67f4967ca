-- A live node re-announces its members of one room and removes members whose
-- node stopped refreshing them (it died).
-- KEYS: 1 members, 2 member data
-- ARGV: 1 now ms, 2 expiry ms, 3 key ttl ms, then client, Member bytes pairs
-- Returns the Member bytes of the members removed as expired.
for i = 4, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)
local out = {}
for _, client in ipairs(expired) do
  local data = redis.call('HGET', KEYS[2], client)
  if data then
    out[#out + 1] = data
  end
  redis.call('ZREM', KEYS[1], client)
  redis.call('HDEL', KEYS[2], client)
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return out
