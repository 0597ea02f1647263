-- Remove the entries every group has acknowledged: trim below the oldest entry still owed.
-- First, groups no live consumer has spoken for in ARGV[1] ms are destroyed (the broadcast
-- groups of instances that are gone), so they do not pin the stream for ever. A group streamq
-- never registered is left alone.
-- KEYS[1] stream, KEYS[2] groups (name -> last seen, server ms); ARGV[1] group idle ms
-- Returns the number of entries removed.
local stream = KEYS[1]
local now_ms = server_time()
for _, g in ipairs(groups_of(stream)) do
  local seen = tonumber(redis.call('HGET', KEYS[2], g.name) or '')
  if seen and now_ms - seen > tonumber(ARGV[1]) then
    redis.call('XGROUP', 'DESTROY', stream, g.name)
    redis.call('HDEL', KEYS[2], g.name)
  end
end
local groups = groups_of(stream)
if #groups == 0 then return 0 end -- no reader yet: the first group will want every entry

local oldest_owed
for _, g in ipairs(groups) do
  local owed
  if g.pending > 0 then
    owed = redis.call('XPENDING', stream, g.name)[2]
  else
    local ms, seq = parse_id(g.last)
    owed = ms .. '-' .. (seq + 1)
  end
  if not oldest_owed or older(owed, oldest_owed) then oldest_owed = owed end
end
return redis.call('XTRIM', stream, 'MINID', oldest_owed)
