-- Remove the entries every group has acknowledged: trim below the oldest entry still owed.
-- First, groups no live consumer has spoken for in their idle time are destroyed (the broadcast
-- groups of instances that are gone), so they do not pin the stream for ever. A group streamq
-- never registered is left alone.
-- KEYS[1] stream, KEYS[2] groups (name -> "last seen (server ms) idle ms"); ARGV[1] the idle ms
-- of a group marked by an older streamq (its value is the last seen time alone)
-- Returns the number of entries removed.
local stream = KEYS[1]
local now_ms = server_time()
for _, g in ipairs(groups_of(stream)) do
  local mark = redis.call('HGET', KEYS[2], g.name) or ''
  local seen, idle = string.match(mark, '^(%d+) (%d+)$')
  if not seen then seen, idle = mark, ARGV[1] end
  seen = tonumber(seen)
  if seen and now_ms - seen > tonumber(idle) then
    redis.call('XGROUP', 'DESTROY', stream, g.name)
    redis.call('HDEL', KEYS[2], g.name)
    -- Its count of keyed entries under per-key concurrency (see key_moved in _lib.lua).
    redis.call('DEL', string.sub(stream, 1, #stream - 6) .. 'kact:' .. g.name)
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
