-- A redelivered entry (its consumer died) is about to run: how many times it was started since
-- its first delivery, kept in the job's record, so that deliveries that never started do not
-- count as attempts. Counts the start about to happen too, unless ARGV[3] is '0' and the entry
-- was started before (a repeat: the consumer counts it once it is its turn to run).
-- KEYS[1] job key; ARGV[1] group, ARGV[2] entry id, ARGV[3] '1' to count a repeat's start
-- Returns {the starts counted before this one (-1 when the job has no record, -2 when it was
-- cancelled: not to run), the group's checkpoint (job.checkpoint) or false}.
local key, field, entry = KEYS[1], 'r:' .. ARGV[1], ARGV[2]
local r = redis.call('HMGET', key, 'state', 'bc', 'state ' .. ARGV[1], 'cp ' .. ARGV[1])
if not r[1] then return { -1, false } end
if state_in_group(r[2], r[3], r[1]) == 'cancelled' then return { -2, false } end
local starts = 0
local value = redis.call('HGET', key, field)
if value then
  local sep = string.find(value, ' ', 1, true)
  -- A field left by an earlier entry of the job (a retry is a new entry) does not count.
  if sep and string.sub(value, 1, sep - 1) == entry then
    starts = tonumber(string.sub(value, sep + 1)) or 0
  end
end
if starts == 0 or ARGV[3] == '1' then
  redis.call('HSET', key, field, entry .. ' ' .. (starts + 1))
end
return { starts, r[4] or false }
