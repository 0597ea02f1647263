-- For wait_for: a finished job's {state, result, error}; otherwise register one more waiter
-- (the finishing script pushes to the job's done list for each) and return {state}.
-- KEYS[1] job key. Returns nil for an unknown job.
local s = redis.call('HMGET', KEYS[1], 'state', 'result', 'error')
if not s[1] then return nil end
if s[1] == 'completed' or s[1] == 'dead' or s[1] == 'cancelled' then return s end
redis.call('HINCRBY', KEYS[1], 'w', 1)
return { s[1] }
