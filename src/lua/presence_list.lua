-- Members whose expiry is in the future.
-- KEYS: 1 members, 2 member data. ARGV: 1 now ms, 2 most members
-- Returns the Member bytes of each.
local clients = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf',
  'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, client in ipairs(clients) do
  local data = redis.call('HGET', KEYS[2], client)
  if data then
    out[#out + 1] = data
  end
end
return out
