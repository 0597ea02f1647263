-- Create or replace a recurring schedule; the same definition again changes nothing.
-- KEYS[1] recurring zset, KEYS[2] definitions; ARGV[1] schedule id, ARGV[2] encoded definition,
-- ARGV[3] first run (unix ms), ARGV[4] wake channel
-- Returns 1 if the schedule was created or replaced, 0 if it already was exactly this.
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PUBLISH', ARGV[4], 'due')
return 1
