-- Replay dead jobs with fresh attempts: staged by priority like new jobs, then one entry per
-- group the job died in. A dead job whose id an unfinished job holds again (enqueued after it
-- died) is left in the dead letters: replaying it would run two jobs under one id.
-- KEYS[1] stream, KEYS[2] dead zset, KEYS[3] dead records, KEYS[4] staged, KEYS[5] staged seq,
-- KEYS[6] window, KEYS[7] events; ARGV[1] job key prefix, ARGV[2] events kept (0: none
-- written; a replayed job is "enqueued" again), ARGV[3..] ids
-- A flow's parent is left for the caller to replay with its children (store/flows.py).
-- Returns {how many jobs were replayed, the ids left because they are in use, the ids of flow
-- parents left}.
local stream, dead, records = KEYS[1], KEYS[2], KEYS[3]
local staged, seq, window = KEYS[4], KEYS[5], KEYS[6]
local revived, in_use, parents = 0, {}, {}
for i = 3, #ARGV do
  local job = ARGV[i]
  local key = ARGV[1] .. job
  local r = redis.call('HMGET', key, 'state', 'bc', 'ch')
  local groups = {}
  for group in string.gmatch(redis.call('HGET', records, 'g:' .. job) or '', '%S+') do
    groups[#groups + 1] = group
  end
  -- A broadcast job still running in other groups is this dead job itself, not one enqueued
  -- since under its id.
  local same_job = r[2] and groups[1] and redis.call('HGET', key, 'state ' .. groups[1]) == 'dead'
  if r[1] and UNFINISHED[r[1]] and not same_job and redis.call('ZSCORE', dead, job) then
    in_use[#in_use + 1] = job
  elseif r[1] == 'dead' and r[3] then
    parents[#parents + 1] = job
  elseif redis.call('ZREM', dead, job) == 1 then
    local payload = redis.call('HGET', records, 'p:' .. job)
    redis.call('HDEL', records, 'r:' .. job, 'p:' .. job, 'g:' .. job)
    if #groups > 0 then
      redis.call('HSET', key, 'state', 'waiting', 'attempts', 0)
      redis.call('HDEL', key, 'error', 'result', 'finished_at', 'to')
      redis.call('PERSIST', key)
      for _, group in ipairs(groups) do
        if r[2] then
          redis.call('HSET', key, 'state ' .. group, 'waiting', 'attempts ' .. group, 0)
          redis.call('HDEL', key, 'error ' .. group, 'finished ' .. group)
        end
        stage_again(staged, seq, key, job, payload or '', group, '-')
      end
      revived = revived + 1
      emit(KEYS[7], ARGV[2], 'enqueued', job, 0)
    end
  end
end
refill(stream, staged, ARGV[1], window_room(stream, window, groups_of(stream)))
return { revived, in_use, parents }
