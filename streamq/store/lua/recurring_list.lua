-- A queue's recurring schedules, soonest first, for inspection.
-- KEYS[1] recurring zset, KEYS[2] definitions
-- Returns per schedule {id, next run (server ms), encoded definition}.
local out = {}
local due = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #due, 2 do
  local definition = redis.call('HGET', KEYS[2], due[i])
  if definition then out[#out + 1] = { due[i], tonumber(due[i + 1]), definition } end
end
return out
