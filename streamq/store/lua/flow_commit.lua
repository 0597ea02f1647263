-- Commit a flow whose steps are all written: from here on it is finished, never undone.
-- KEYS[1] the root's record; ARGV[1] token
-- Returns 1, or 0 when the flow was undone meanwhile (its creation took too long: the sweep).
local r = redis.call('HMGET', KEYS[1], 'state', 'fl')
if r[1] ~= 'held' or r[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'cm', 1)
return 1
