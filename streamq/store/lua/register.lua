-- A live consumer registers (and, periodically, renews) its prefetch in the queue's window, so
-- the window holds about what the live consumers can take; then staged jobs fill the room.
-- It also marks the consumer's group as alive, with the idle time after which it counts as gone
-- (each manager's own setting: a manager set to a shorter one must not remove this group).
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] window, KEYS[4] groups, KEYS[5] paused
-- ARGV[1] job key prefix, ARGV[2] consumer, ARGV[3] prefetch (0 to leave), ARGV[4] ttl ms,
-- ARGV[5] group, ARGV[6] group idle ms
-- Returns {the window's new total, 1 if the queue is paused else 0} (a consumer that missed the
-- channel's message finds out here).
local now_ms = server_time()
redis.call('HSET', KEYS[4], ARGV[5], now_ms .. ' ' .. ARGV[6])
if tonumber(ARGV[3]) > 0 then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3] .. ':' .. (now_ms + tonumber(ARGV[4])))
else
  redis.call('HDEL', KEYS[3], ARGV[2])
end
local total = recount_window(KEYS[3], now_ms)
refill(KEYS[1], KEYS[2], ARGV[1], window_room(KEYS[1], KEYS[3], groups_of(KEYS[1])))
return { total, redis.call('EXISTS', KEYS[5]) }
