-- The recurring schedules due now, for the scheduler to compute their next runs.
-- KEYS[1] recurring zset, KEYS[2] definitions; ARGV[1] most schedules
-- Returns {server now (ms), ms until the next one after these is due (-1: none),
-- {{id, due (ms), definition}, ...}}.
local now_ms = server_time()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[1]))
local out = {}
for i = 1, #due, 2 do
  out[#out + 1] = { due[i], due[i + 1], redis.call('HGET', KEYS[2], due[i]) or '' }
end
local wait = -1
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now_ms, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if later[2] then wait = tonumber(later[2]) - now_ms end
return { now_ms, wait, out }
