-- Keep the entries a live consumer holds from being reclaimed: reset their idle time.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids the consumer holds
-- Only entries it still owns are touched (XCLAIM JUSTID does not count a delivery).
-- Returns the ids it no longer owns.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local claim, lost = { 'XCLAIM', stream, group, consumer, 0 }, {}
for i = 3, #ARGV do
  if owns(stream, group, consumer, ARGV[i]) then
    claim[#claim + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
if #claim > 5 then
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
end
return lost
