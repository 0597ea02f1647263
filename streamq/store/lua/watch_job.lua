-- For wait_for. ARGV[1] '+' registers a waiter (while one is registered, the finishing script
-- publishes the job's finish), '=' only looks, '-' takes a waiter back (it stopped waiting).
-- KEYS[1] job key
-- Returns nil for an unknown job, {state, result, error} for a finished one, else {state}.
local s = redis.call('HMGET', KEYS[1], 'state', 'result', 'error', 'w')
if not s[1] then return nil end
local finished = s[1] == 'completed' or s[1] == 'dead' or s[1] == 'cancelled'
if ARGV[1] == '+' and not finished then
  redis.call('HINCRBY', KEYS[1], 'w', 1)
elseif ARGV[1] == '-' and tonumber(s[4] or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], 'w', -1)
end
if finished then return { s[1], s[2], s[3] } end
return { s[1] }
