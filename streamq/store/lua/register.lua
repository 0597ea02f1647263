-- A live consumer registers (and, periodically, renews) its prefetch in the queue's window, so
-- the window holds about what the live consumers can take; then staged jobs fill the room.
-- It also marks the consumer's group as alive, with the idle time after which it counts as gone
-- (each manager's own setting: a manager set to a shorter one must not remove this group), and
-- registers its per-key limits (fair queues): each group's are the strictest of its live
-- consumers' (see key_limits in _lib.lua).
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] window, KEYS[4] groups, KEYS[5] paused
-- ARGV[1] job key prefix, ARGV[2] consumer, ARGV[3] prefetch (0 to leave), ARGV[4] ttl ms,
-- ARGV[5] group, ARGV[6] group idle ms, ARGV[7] per-key concurrency (0: none), ARGV[8] per-key
-- rate limit's jobs (0: none), ARGV[9] its period in ms
-- Returns {the window's new total, 1 if the queue is paused else 0} (a consumer that missed the
-- channel's message finds out here).
local now_ms = server_time()
local consumer, group = ARGV[2], ARGV[5]
redis.call('HSET', KEYS[4], group, now_ms .. ' ' .. ARGV[6])
local leaving = tonumber(ARGV[3]) <= 0
if not leaving then
  redis.call('HSET', KEYS[3], consumer, ARGV[3] .. ':' .. (now_ms + tonumber(ARGV[4])))
else
  redis.call('HDEL', KEYS[3], consumer)
end
local total = recount_window(KEYS[3], now_ms)

-- Per-key limits: this consumer's registration, then each group's strictest of the live ones.
local limits, by = limit_keys(KEYS[2])
local conc, rate, period = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local limited = not leaving and (conc > 0 or rate > 0)
if limited or redis.call('EXISTS', by) == 1 then
  if limited then
    redis.call('HSET', by, consumer,
      (now_ms + tonumber(ARGV[4])) .. ' ' .. group .. ' ' .. conc .. ' ' .. rate .. ' ' .. period)
  else
    redis.call('HDEL', by, consumer)
  end
  local strictest, flat = {}, redis.call('HGETALL', by)
  for i = 1, #flat, 2 do
    local expiry, g, c, r, p = string.match(flat[i + 1], '^(%d+) (%S+) (%d+) (%d+) (%d+)$')
    if not expiry or tonumber(expiry) <= now_ms then
      redis.call('HDEL', by, flat[i])
    else
      c, r, p = tonumber(c), tonumber(r), tonumber(p)
      local s = strictest[g] or { c = 0, r = 0, p = 0 }
      if c > 0 and (s.c == 0 or c < s.c) then s.c = c end
      -- The fewest starts per millisecond: r / p < s.r / s.p.
      if r > 0 and (s.r == 0 or r * s.p < s.r * p) then s.r, s.p = r, p end
      strictest[g] = s
    end
  end
  local changed = false
  local old = redis.call('HGETALL', limits)
  local count = 0
  for i = 1, #old, 2 do
    local s = strictest[old[i]]
    if not s or old[i + 1] ~= s.c .. ' ' .. s.r .. ' ' .. s.p then changed = true end
    count = count + 1
  end
  for _ in pairs(strictest) do count = count - 1 end
  if changed or count ~= 0 then
    redis.call('DEL', limits)
    for g, s in pairs(strictest) do redis.call('HSET', limits, g, s.c .. ' ' .. s.r .. ' ' .. s.p) end
    -- Keys held back under the old limits take turns again: refill holds back what the new
    -- ones hold back.
    local parked, full = held_back_keys(KEYS[2])
    for _, set in ipairs({ parked, full }) do
      for _, fk in ipairs(redis.call('ZRANGE', set, 0, -1)) do rejoin(KEYS[2], fk) end
      redis.call('DEL', set)
    end
  end
end

refill(KEYS[1], KEYS[2], ARGV[1], window_room(KEYS[1], KEYS[3], groups_of(KEYS[1])))
return { total, redis.call('EXISTS', KEYS[5]) }
