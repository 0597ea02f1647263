-- Move due retries into the stream, each entry targeted at the group the job failed in.
-- KEYS[1] stream, KEYS[2] retry zset, KEYS[3] retry payloads
-- ARGV[1] job key prefix, ARGV[2] most retries to move in one call
-- Returns {moved, ms until the next retry is due or -1 when none waits}.
local stream, retry, payloads = KEYS[1], KEYS[2], KEYS[3]
local now_ms = server_time()
local due = redis.call('ZRANGEBYSCORE', retry, '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local tab = string.find(member, '\t', 1, true)
  local group, job = string.sub(member, 1, tab - 1), string.sub(member, tab + 1)
  local value = redis.call('HGET', payloads, member)
  if value then
    local sep = string.find(value, '\t', 1, true)
    local entry = redis.call('XADD', stream, '*', 'j', job, 'p', string.sub(value, sep + 1),
      'a', string.sub(value, 1, sep - 1), 'g', group)
    local key = ARGV[1] .. job
    if redis.call('HGET', key, 'state') == 'retrying' then
      redis.call('HSET', key, 'state', 'waiting', 'entry', entry)
    end
    redis.call('HDEL', payloads, member)
  end
  redis.call('ZREM', retry, member)
end
local next_due = redis.call('ZRANGE', retry, 0, 0, 'WITHSCORES')
local wait = -1
if next_due[2] then wait = math.max(0, tonumber(next_due[2]) - now_ms) end
return { #due, wait }
