-- KEYS: 1 members (zset client -> expiry ms), 2 member data (hash client -> Member)
-- ARGV: 1 client, 2 Member bytes, 3 expiry ms, 4 key ttl ms
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
