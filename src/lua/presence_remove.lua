-- KEYS: 1 members, 2 member data. ARGV: 1 client
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
