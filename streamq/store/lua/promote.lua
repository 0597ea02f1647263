-- The scheduler's step: due retries (each for the group it failed in) and due delayed jobs are
-- staged by priority, and staged jobs fill the window's room.
-- KEYS[1] stream, KEYS[2] retry zset, KEYS[3] retry payloads, KEYS[4] delayed, KEYS[5] staged,
-- KEYS[6] staged seq, KEYS[7] window
-- ARGV[1] job key prefix, ARGV[2] most jobs to move from each set in one call
-- Returns {moved, ms until the next retry or delayed job is due (-1 when none waits)}.
local stream, retry, payloads, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local staged, seq, window = KEYS[5], KEYS[6], KEYS[7]
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local now_ms = server_time()

local due = redis.call('ZRANGEBYSCORE', retry, '-inf', now_ms, 'LIMIT', 0, limit)
for _, member in ipairs(due) do
  local tab = string.find(member, '\t', 1, true)
  local group, job = string.sub(member, 1, tab - 1), string.sub(member, tab + 1)
  local value = redis.call('HGET', payloads, member)
  if value then
    local sep = string.find(value, '\t', 1, true)
    local attempt, payload = string.sub(value, 1, sep - 1), string.sub(value, sep + 1)
    local key = prefix .. job
    local r = redis.call('HMGET', key, 'state', 'to', 'bc', 'state ' .. group)
    if r[3] and r[4] == 'retrying' then
      -- A broadcast job: the retry is its group's alone (see settle_broadcast).
      stage_again(staged, seq, key, job, payload, group, attempt)
      redis.call('HSET', key, 'state ' .. group, 'waiting')
    elseif not r[3] and (r[1] == 'retrying' or (r[1] == 'waiting' and r[2])) then
      stage_again(staged, seq, key, job, payload, group, attempt)
      redis.call('HSET', key, 'state', 'waiting')
    else
      -- The record is not this retry's now (a job enqueued since under its id): the entry
      -- goes straight to the stream, the record left as it is.
      redis.call('XADD', stream, '*', 'j', job, 'p', payload, 'a', attempt, 'g', group)
    end
    redis.call('HDEL', payloads, member)
  end
  redis.call('ZREM', retry, member)
end

local ready = redis.call('ZRANGEBYSCORE', delayed, '-inf', now_ms, 'LIMIT', 0, limit)
for _, job in ipairs(ready) do
  local key = prefix .. job
  local s = redis.call('HMGET', key, 'state', 'priority', 'fk')
  if s[1] == 'delayed' then
    stage(staged, seq, job, tonumber(s[2] or '0'), s[3])
    redis.call('HSET', key, 'state', 'waiting')
  end
  redis.call('ZREM', delayed, job)
end
refill(stream, staged, prefix, window_room(stream, window, groups_of(stream)))

local wait = -1
for _, set in ipairs({ retry, delayed }) do
  local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
  if first[2] then
    local ms = math.max(0, tonumber(first[2]) - now_ms)
    if wait < 0 or ms < wait then wait = ms end
  end
end
return { #due + #ready, wait }
