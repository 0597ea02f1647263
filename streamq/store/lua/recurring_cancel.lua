-- Remove a recurring schedule. KEYS[1] recurring zset, KEYS[2] definitions; ARGV[1] schedule id.
-- Returns 1 if there was one.
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
