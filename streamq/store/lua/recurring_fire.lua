-- Fire one occurrence of a recurring schedule, exactly once however many schedulers run: only
-- the caller that still finds the schedule at the due time it read moves it on and enqueues.
-- KEYS[1] recurring zset, KEYS[2] definitions, KEYS[3] stream, KEYS[4] staged, KEYS[5] staged seq,
-- KEYS[6] window, KEYS[7] job key of this run, KEYS[8] events
-- ARGV[1] schedule id, ARGV[2] due it was read at (ms), ARGV[3] next due (ms),
-- ARGV[4] definition it was read with, ARGV[5] run's job id, ARGV[6] payload,
-- ARGV[7] enqueued_at, ARGV[8] priority, ARGV[9] events kept (0: none written)
-- Returns 1 if this call fired the occurrence, else 0.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2])
    or redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[4] then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local state = redis.call('HGET', KEYS[7], 'state')
if state and state ~= 'completed' and state ~= 'dead' and state ~= 'cancelled' then
  return 1 -- this very run is still unfinished
end
if state then redis.call('DEL', KEYS[7]) end
add_ready(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[5], ARGV[6], ARGV[7],
  tonumber(ARGV[8]), nil)
emit(KEYS[8], ARGV[9], 'enqueued', ARGV[5], 0)
return 1
