-- Remove the entries every group has acknowledged: trim below the oldest entry still owed.
-- KEYS[1] stream
-- Returns the number of entries removed.
local stream = KEYS[1]
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
