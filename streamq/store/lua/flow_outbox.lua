-- A queue's outbox of children's finishes for their parents (tell_parent), read by the relays
-- of the managers that consume the queue through a consumer group of its own, so that each
-- item goes to one relay; one that died holding items has them claimed by another.
-- KEYS[1] outbox; ARGV[1] 'take' (ARGV[2] relay, ARGV[3] most, ARGV[4] claim items held longer
-- than this many ms, 0: none), or 'done' (ARGV[2..] the items applied)
-- Returns for 'take' {{item id, {field, value, ...}}, ...}; for 'done' how many were deleted.
local outbox = KEYS[1]
local GROUP = 'relay'
if ARGV[1] == 'done' then
  redis.call('XACK', outbox, GROUP, unpack(ARGV, 2))
  return redis.call('XDEL', outbox, unpack(ARGV, 2))
end
if redis.call('EXISTS', outbox) == 0 then return {} end
local found = false
for _, g in ipairs(groups_of(outbox)) do found = found or g.name == GROUP end
if not found then redis.call('XGROUP', 'CREATE', outbox, GROUP, '0') end
local most, items = tonumber(ARGV[3]), {}
if tonumber(ARGV[4]) > 0 then
  local claimed = redis.call('XAUTOCLAIM', outbox, GROUP, ARGV[2], ARGV[4], '0-0', 'COUNT', most)
  for _, item in ipairs(claimed[2]) do
    if item and item[2] then items[#items + 1] = item end
  end
end
if #items < most then
  local reply = redis.call('XREADGROUP', 'GROUP', GROUP, ARGV[2], 'COUNT', most - #items,
    'STREAMS', outbox, '>')
  if reply then
    for _, item in ipairs(reply[1][2]) do items[#items + 1] = item end
  end
end
return items
