-- On a graceful stop: hand the entries a consumer still holds back to its group at once, and
-- remove the consumer from the group when it owes nothing.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] consumer; then per entry: id, delivery count to keep
-- (the count minus one for an entry that never started, so the next delivery is the same attempt).
-- Returns the number of entries handed back.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
-- Idle for a year: past any visibility timeout, so the group's next reclaim sweep takes it.
local LONG_IDLE = 31536000000
local released = 0
for i = 3, #ARGV, 2 do
  if owns(stream, group, consumer, ARGV[i]) then
    redis.call('XCLAIM', stream, group, consumer, 0, ARGV[i], 'IDLE', LONG_IDLE,
      'RETRYCOUNT', ARGV[i + 1], 'JUSTID')
    released = released + 1
  end
end
if #redis.call('XPENDING', stream, group, '-', '+', 1, consumer) == 0 then
  redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer)
end
return released
