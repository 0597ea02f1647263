-- The dead letters, oldest failure first.
-- KEYS[1] dead zset, KEYS[2] dead records; ARGV[1] how many
-- Returns per job {job id, encoded record, payload, groups}.
local out = {}
for _, job in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  local r = redis.call('HMGET', KEYS[2], 'r:' .. job, 'p:' .. job, 'g:' .. job)
  if r[1] then out[#out + 1] = { job, r[1], r[2], r[3] } end
end
return out
