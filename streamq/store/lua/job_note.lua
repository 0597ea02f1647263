-- What a running handler keeps with its job: its progress, a log line, or its cursor (a
-- checkpoint, per consumer group), or read back that cursor. Nothing is written for a job
-- whose record is gone (it expired, or the queue was deleted).
-- KEYS[1] job key, KEYS[2] the job's log key, KEYS[3] the queue's events; ARGV[1] 'progress',
-- 'log', 'checkpoint' or 'resume', ARGV[2] the value (encoded) or log line, ARGV[3] group,
-- ARGV[4] log lines kept, ARGV[5] events kept (progress is an event too; 0: none written),
-- ARGV[6] attempt, ARGV[7] '1' when the attempt's "started" event is not written yet (first),
-- ARGV[8] job id
-- Returns 1 when written (the cursor for 'resume', or false), 0 for a job with no record.
local key, kind = KEYS[1], ARGV[1]
if kind == 'resume' then return redis.call('HGET', key, 'cp ' .. ARGV[3]) end
if redis.call('EXISTS', key) == 0 then return 0 end
if kind == 'progress' then
  redis.call('HSET', key, 'progress', ARGV[2])
  local job = ARGV[8]
  if ARGV[7] == '1' then emit(KEYS[3], ARGV[5], 'started', job, ARGV[6], ARGV[3]) end
  emit(KEYS[3], ARGV[5], 'progress', job, ARGV[6], ARGV[3], ARGV[2])
elseif kind == 'checkpoint' then
  redis.call('HSET', key, 'cp ' .. ARGV[3], ARGV[2])
else
  redis.call('HSET', key, 'lg', 1)
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
  -- A finished record expires: its log goes with it.
  local ttl = redis.call('PTTL', key)
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return 1
