-- A queue's outbox of children's finishes for their parents (tell_parent), read by the relays
-- of the managers that consume the queue through a consumer group of its own, so that each
-- item goes to one relay; one that died holding items has them claimed by another.
-- KEYS[1] outbox; ARGV[1] relay, ARGV[2] most, ARGV[3] claim items held longer than this many
-- ms (0: none), ARGV[4..] the items this relay applied since its last call (deleted first: so a
-- round of the relay is this call and the applying one)
-- Returns {{item id, {field, value, ...}}, ...}.
local outbox = KEYS[1]
local GROUP = 'relay'
if #ARGV > 3 then
  redis.call('XACK', outbox, GROUP, unpack(ARGV, 4))
  redis.call('XDEL', outbox, unpack(ARGV, 4))
end
if redis.call('EXISTS', outbox) == 0 then return {} end
local found = false
for _, g in ipairs(groups_of(outbox)) do found = found or g.name == GROUP end
if not found then redis.call('XGROUP', 'CREATE', outbox, GROUP, '0') end
local most, items = tonumber(ARGV[2]), {}
if tonumber(ARGV[3]) > 0 then
  local claimed = redis.call('XAUTOCLAIM', outbox, GROUP, ARGV[1], ARGV[3], '0-0', 'COUNT', most)
  for _, item in ipairs(claimed[2]) do
    if item and item[2] then items[#items + 1] = item end
  end
end
if #items < most then
  local reply = redis.call('XREADGROUP', 'GROUP', GROUP, ARGV[1], 'COUNT', most - #items,
    'STREAMS', outbox, '>')
  if reply then
    for _, item in ipairs(reply[1][2]) do items[#items + 1] = item end
  end
end
return items
