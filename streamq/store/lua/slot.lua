-- Take a slot under the group's global concurrency for an entry about to run (see free_slots
-- in _lib.lua): slots that lapsed (their consumer died) are freed first; an entry that holds one
-- already (reclaimed from a consumer that died) keeps it.
-- KEYS[1] the group's slots; ARGV[1] entry id, ARGV[2] most slots, ARGV[3] how long a slot
-- lasts (ms) without a heartbeat
-- Returns {1, 0} when the entry holds a slot, else {0, ms until the soonest slot lapses}.
local slots, entry, most = KEYS[1], ARGV[1], tonumber(ARGV[2])
local now = server_time()
local lapse = now + tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
if redis.call('ZSCORE', slots, entry) then
  redis.call('ZADD', slots, lapse, entry)
  return { 1, 0 }
end
local taken = redis.call('ZCARD', slots)
if redis.call('ZSCORE', slots, SLOT_WAITER) then taken = taken - 1 end
if taken < most then
  redis.call('ZADD', slots, lapse, entry)
  return { 1, 0 }
end
redis.call('ZADD', slots, 'inf', SLOT_WAITER)
local soonest = redis.call('ZRANGE', slots, 0, 0, 'WITHSCORES')
return { 0, math.max(1, tonumber(soonest[2]) - now) }
