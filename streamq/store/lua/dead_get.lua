-- One dead job. KEYS[1] dead records; ARGV[1] job id
-- Returns {encoded record, payload, groups}, or nil when no dead job has that id.
local job = ARGV[1]
local r = redis.call('HMGET', KEYS[1], 'r:' .. job, 'p:' .. job, 'g:' .. job)
if not r[1] then return nil end
return r
