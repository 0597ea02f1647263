-- On a graceful stop: hand every entry a consumer still owns back to its group at once, so the
-- group's next reclaim sweep takes it, and leave the group. Walking the consumer's pending list
-- (rather than trusting the caller's list) also returns entries whose read reply the stop cut
-- off. The entries wait with the HANDED_BACK consumer, so the one that takes them knows they
-- were handed back, not lost by a consumer that died.
-- The delivery count goes back by one, and so does the count of starts the consumer recorded
-- for a redelivered entry (rerun.lua): the next delivery is the same attempt, since an
-- interrupted run is not a failure.
-- It also takes the consumer's prefetch out of the queue's window.
-- KEYS[1] stream, KEYS[2] window, KEYS[3] the group's slots; ARGV[1] group, ARGV[2] consumer,
-- ARGV[3] job key prefix, ARGV[4] the queue's channel, then pairs of entry id, job id: the
-- entries whose start the consumer counted
-- Returns the number of entries handed back.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
for i = 5, #ARGV, 2 do
  local key, entry = ARGV[3] .. ARGV[i + 1], ARGV[i]
  local value = redis.call('HGET', key, 'r:' .. group)
  if value and string.sub(value, 1, #entry + 1) == entry .. ' ' then
    local starts = tonumber(string.sub(value, #entry + 2)) or 0
    if starts > 1 then
      redis.call('HSET', key, 'r:' .. group, entry .. ' ' .. (starts - 1))
    else
      redis.call('HDEL', key, 'r:' .. group)
    end
  end
end
if redis.call('HDEL', KEYS[2], consumer) == 1 then
  recount_window(KEYS[2], server_time())
end
-- Idle for a year: past any visibility timeout (and below the clock, which XCLAIM requires).
local LONG_IDLE = 31536000000
local PAGE = 500
local released, start = 0, '-'
for _ = 1, 100 do
  local page = redis.call('XPENDING', stream, group, start, '+', PAGE, consumer)
  local entries = {}
  for _, p in ipairs(page) do
    redis.call('XCLAIM', stream, group, HANDED_BACK, 0, p[1], 'IDLE', LONG_IDLE,
      'RETRYCOUNT', math.max(0, p[4] - 1), 'JUSTID')
    entries[#entries + 1] = p[1]
    released = released + 1
  end
  free_slots(KEYS[3], ARGV[4], group, entries)
  if #page < PAGE then break end
  start = '(' .. page[#page][1]
end
-- It owes nothing now: out of the group's list of consumers (XINFO, the CLI's info).
redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer)
return released
