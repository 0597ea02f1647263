-- Flows whose creation began more than ARGV[2] ms ago and has not ended (the producer stopped,
-- or is very slow): the sweep finishes each committed one and undoes the others.
-- KEYS[1] flows being created; ARGV[1] job key prefix, ARGV[2] age (ms), ARGV[3] most
-- Returns {root id, spec, committed (0/1), ...}; a root whose record is gone is dropped.
local now_ms = server_time()
local out = {}
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms - tonumber(ARGV[2]),
  'LIMIT', 0, tonumber(ARGV[3]))
for _, job in ipairs(stale) do
  local r = redis.call('HMGET', ARGV[1] .. job, 'fs', 'cm')
  if r[1] then
    out[#out + 1] = job
    out[#out + 1] = r[1]
    out[#out + 1] = r[2] and 1 or 0
  else
    redis.call('ZREM', KEYS[1], job)
  end
end
return out
