-- Replay dead jobs with fresh attempts: staged by priority like new jobs, then one entry per
-- group the job died in. A dead job whose id an unfinished job holds again (enqueued after it
-- died) is left in the dead letters: replaying it would run two jobs under one id.
-- KEYS[1] stream, KEYS[2] dead zset, KEYS[3] dead records, KEYS[4] staged, KEYS[5] staged seq,
-- KEYS[6] window; ARGV[1] job key prefix, ARGV[2..] ids
-- Returns {how many jobs were replayed, the ids left because they are in use}.
local stream, dead, records = KEYS[1], KEYS[2], KEYS[3]
local staged, seq, window = KEYS[4], KEYS[5], KEYS[6]
local revived, in_use = 0, {}
for i = 2, #ARGV do
  local job = ARGV[i]
  local key = ARGV[1] .. job
  local state = redis.call('HGET', key, 'state')
  if state and UNFINISHED[state] and redis.call('ZSCORE', dead, job) then
    in_use[#in_use + 1] = job
  elseif redis.call('ZREM', dead, job) == 1 then
    local r = redis.call('HMGET', records, 'p:' .. job, 'g:' .. job)
    redis.call('HDEL', records, 'r:' .. job, 'p:' .. job, 'g:' .. job)
    local groups = {}
    for group in string.gmatch(r[2] or '', '%S+') do groups[#groups + 1] = group end
    if #groups > 0 then
      redis.call('HSET', key, 'state', 'waiting', 'attempts', 0)
      redis.call('HDEL', key, 'error', 'result', 'finished_at', 'to')
      redis.call('PERSIST', key)
      for _, group in ipairs(groups) do
        stage_again(staged, seq, key, job, r[1] or '', group, '-')
      end
      revived = revived + 1
    end
  end
end
refill(stream, staged, ARGV[1], window_room(stream, window, groups_of(stream)))
return { revived, in_use }
