-- Replay dead jobs with fresh attempts: one entry per group the job died in. A dead job whose
-- id an unfinished job holds again (enqueued after it died) is left in the dead letters:
-- replaying it would run two jobs under one id.
-- KEYS[1] stream, KEYS[2] dead zset, KEYS[3] dead records; ARGV[1] job key prefix, ARGV[2..] ids
-- Returns {how many jobs were replayed, the ids left because they are in use}.
local stream, dead, records = KEYS[1], KEYS[2], KEYS[3]
local revived, in_use = 0, {}
for i = 2, #ARGV do
  local job = ARGV[i]
  local key = ARGV[1] .. job
  local state = redis.call('HGET', key, 'state')
  if state and UNFINISHED[state] and redis.call('ZSCORE', dead, job) then
    in_use[#in_use + 1] = job
  elseif redis.call('ZREM', dead, job) == 1 then
    local r = redis.call('HMGET', records, 'p:' .. job, 'g:' .. job)
    local entry
    for group in string.gmatch(r[2] or '', '%S+') do
      entry = redis.call('XADD', stream, '*', 'j', job, 'p', r[1] or '', 'g', group)
    end
    redis.call('HDEL', records, 'r:' .. job, 'p:' .. job, 'g:' .. job)
    if entry then
      redis.call('HSET', key, 'state', 'waiting', 'entry', entry, 'attempts', 0)
      redis.call('HDEL', key, 'error', 'result', 'finished_at')
      redis.call('PERSIST', key)
      revived = revived + 1
    end
  end
end
return { revived, in_use }
