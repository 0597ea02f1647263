-- A sliding-window limit on job starts shared by every consumer of a group: at most ARGV[2]
-- starts in any ARGV[3] ms. KEYS[1] the group's log of starts (sorted set), KEYS[2] its counter.
-- ARGV[1] starts wanted
-- Returns {starts granted, ms until the next start may be granted (0 when all were granted)}.
local now_ms = server_time()
local limit, period = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - period)
local grant = math.min(tonumber(ARGV[1]), limit - redis.call('ZCARD', KEYS[1]))
for _ = 1, grant do
  redis.call('ZADD', KEYS[1], now_ms, redis.call('INCR', KEYS[2]))
end
redis.call('PEXPIRE', KEYS[1], period + 1000)
redis.call('PEXPIRE', KEYS[2], period + 1000)
local wait = 0
if grant < tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.max(1, tonumber(oldest[2]) + period - now_ms + 1)
end
return { math.max(grant, 0), wait }
