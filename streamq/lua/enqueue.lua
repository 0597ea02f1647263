-- Add jobs to the stream, each unless an unfinished job already holds its id.
-- KEYS[1] stream
-- ARGV[1] job key prefix; then per job: id, payload, enqueued_at (unix seconds)
-- Returns per job 1 (added) or 0 (a duplicate: nothing changed).
local UNFINISHED = { waiting = true, delayed = true, active = true, retrying = true }
local stream, prefix = KEYS[1], ARGV[1]
local added = {}
for i = 2, #ARGV, 3 do
  local key = prefix .. ARGV[i]
  local state = redis.call('HGET', key, 'state')
  if state and UNFINISHED[state] then
    added[#added + 1] = 0
  else
    if state then redis.call('DEL', key) end
    local entry = redis.call('XADD', stream, '*', 'j', ARGV[i], 'p', ARGV[i + 1])
    redis.call('HSET', key, 'state', 'waiting', 'entry', entry, 'enqueued_at', ARGV[i + 2])
    added[#added + 1] = 1
  end
end
return added
