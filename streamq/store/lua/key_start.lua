-- A start permit under a fairness key's rate limit (consume(per_key_rate_limit=(n, s))) for an
-- entry about to run: at most ARGV[2] starts of the key's jobs in any ARGV[3] ms across the
-- group. Refilling lets a key's jobs into the window at that rate already (key_blocked in
-- _lib.lua); this holds for their starts, which a busy window can bunch.
-- KEYS[1] the key's log of starts in the group; ARGV[1] entry id, ARGV[2] most starts,
-- ARGV[3] period ms
-- Returns 0 when the entry may start, else ms until the oldest start leaves the period.
local now = server_time()
local log, limit, period = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - period)
if redis.call('ZCARD', log) < limit then
  -- A start of an entry that ran before (redelivered) is a start too: unique member.
  redis.call('ZADD', log, now, ARGV[1] .. ' ' .. now)
  redis.call('PEXPIRE', log, period + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + period - now + 1)
