-- A queue's per-minute history (Queue.history, store/history.py): the hashes of the last ARGV[1]
-- minutes by the server's clock, the current one included, oldest first.
-- KEYS[1] the history key prefix (a minute's hash is it and the minute's unix seconds)
-- Returns {{minute, {field, value, ...}}, ...}, a minute without a hash with no fields.
local now_ms = server_time()
local minute = math.floor(now_ms / 60000) * 60
local out = {}
for m = minute - (tonumber(ARGV[1]) - 1) * 60, minute, 60 do
  local name = string.format('%d', m)
  out[#out + 1] = { name, redis.call('HGETALL', KEYS[1] .. name) }
end
return out
