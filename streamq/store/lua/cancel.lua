-- Cancel a waiting, delayed or retrying job: out of the delayed or staged set, out of the
-- retries, or out of the stream while no group has been delivered it yet. A broadcast job that
-- a group already finished (its record is per group) is not cancelled.
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] delayed, KEYS[4] job key, KEYS[5] finished,
-- KEYS[6] retry zset, KEYS[7] retry payloads
-- ARGV[1] job id, ARGV[2] the queue's channel, ARGV[3] result ttl (s), ARGV[4] finished records
-- to keep, ARGV[5] job key prefix
-- Returns 1 if the job was cancelled, else 0 (unknown, running, or finished).
local stream, key, job = KEYS[1], KEYS[4], ARGV[1]
local s = redis.call('HMGET', key, 'state', 'entry', 'bc')
local removed = false
if s[3] then return 0 end
if s[1] == 'retrying' then
  -- Waiting out its backoff: the retry is its group's member of the retry set.
  for _, g in ipairs(groups_of(stream)) do
    local member = g.name .. '\t' .. job
    if redis.call('ZREM', KEYS[6], member) == 1 then
      redis.call('HDEL', KEYS[7], member)
      removed = true
    end
  end
elseif s[1] == 'delayed' then
  removed = redis.call('ZREM', KEYS[3], job) == 1
elseif s[1] == 'waiting' then
  if redis.call('ZREM', KEYS[2], job) == 1 then
    removed = true
  elseif s[2] then
    local delivered = false
    for _, g in ipairs(groups_of(stream)) do
      if not older(g.last, s[2]) then delivered = true end
    end
    removed = not delivered and redis.call('XDEL', stream, s[2]) == 1
  end
end
if not removed then return 0 end
local _, now = server_time()
local kept = retention(KEYS[5], ARGV[3], ARGV[4])
redis.call('HSET', key, 'state', 'cancelled', 'finished_at', now)
redis.call('HDEL', key, 'p', 'to')
retain(kept, key, job)
notify(key, ARGV[2], job)
trim_finished(kept, ARGV[5])
return 1
