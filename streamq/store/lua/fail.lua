-- A failed attempt: schedule a retry in the same group, or move the job to the dead letters.
-- KEYS[1] stream, KEYS[2] retry zset, KEYS[3] retry payloads, KEYS[4] dead zset, KEYS[5] dead records,
-- KEYS[6] staged, KEYS[7] window, KEYS[8] finished, KEYS[9] the group's slots, KEYS[10] events
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] job key prefix, ARGV[4] the queue's channel,
-- ARGV[5] result ttl (s), ARGV[6] entry id, ARGV[7] job id, ARGV[8] attempt, ARGV[9] error,
-- ARGV[10] retry delay in ms (negative: dead-letter), ARGV[11] payload, ARGV[12] dead record,
-- ARGV[13] failure time (unix seconds, the dead set's score), ARGV[14] finished records to keep,
-- ARGV[15] events kept (0: none written), ARGV[16] '1' when the attempt's "started" event is
-- not written yet (it is, first), ARGV[17] the history key prefix, ARGV[18] a history hash's
-- ttl (s)
-- Returns 1, or 0 when the entry is no longer this consumer's (its new owner decides).
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local entry, job, attempt, err = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
if not owns(stream, group, consumer, entry) then return 0 end
free_slots(KEYS[9], ARGV[4], group, { entry })
local groups = groups_of(stream)
ack(stream, group, entry, #groups == 1)
local key = ARGV[3] .. job
local record = redis.call('HMGET', key, 'entry', 'bc', 'entry ' .. group, 'state',
  'state ' .. group, 'pa', 'fk')
key_done(KEYS[6], group, record[7], entry)
local current = (record[3] or record[1]) == entry
-- Cancelled while its handler ran: neither retried nor dead-lettered.
local cancelled = state_in_group(record[2], record[5], record[4]) == 'cancelled'
if current and cancelled then
  refill_after_ack(stream, KEYS[6], KEYS[7], ARGV[3])
  return 1
end
if ARGV[16] == '1' then emit(KEYS[10], ARGV[15], 'started', job, attempt, group) end
-- With several groups reading the stream, the outcome is this group's (see settle_broadcast).
local broadcast = #groups > 1 or record[2]
local now_ms, now = server_time()
local kept = retention(KEYS[8], ARGV[5], ARGV[14])
local delay = tonumber(ARGV[10])
-- This minute's history: a failed attempt, and whether the job went to the dead letters.
-- Its expiry is set when a field is new (so when it is created), not on every call.
if current then
  local hist = ARGV[17] .. string.format('%d', math.floor(now_ms / 60000) * 60)
  local new = redis.call('HINCRBY', hist, 'f', 1) == 1
  if delay < 0 and redis.call('HINCRBY', hist, 'd', 1) == 1 then new = true end
  if new then redis.call('EXPIRE', hist, ARGV[18]) end
end
if delay >= 0 then
  local member = group .. '\t' .. job
  redis.call('ZADD', KEYS[2], now_ms + delay, member)
  redis.call('HSET', KEYS[3], member, (attempt + 1) .. '\t' .. ARGV[11])
  if current and broadcast then
    redis.call('HSET', key, 'bc', 1, 'state ' .. group, 'retrying', 'attempts ' .. group, attempt,
      'error ' .. group, err)
  elseif current then
    redis.call('HSET', key, 'state', 'retrying', 'attempts', attempt, 'error', err)
  end
  if current then emit(KEYS[10], ARGV[15], 'failed', job, attempt, group, err) end
else
  redis.call('ZADD', KEYS[4], ARGV[13], job)
  local dead_in = redis.call('HGET', KEYS[5], 'g:' .. job)
  if not dead_in then
    dead_in = group
  elseif not string.find(' ' .. dead_in .. ' ', ' ' .. group .. ' ', 1, true) then
    dead_in = dead_in .. ' ' .. group
  end
  redis.call('HSET', KEYS[5], 'r:' .. job, ARGV[12], 'p:' .. job, ARGV[11], 'g:' .. job, dead_in)
  if current and broadcast then
    redis.call('HSET', key, 'bc', 1, 'state ' .. group, 'dead', 'attempts ' .. group, attempt,
      'error ' .. group, err, 'finished ' .. group, now)
    settle_broadcast(stream, key, job, groups, kept, now)
  elseif current then
    redis.call('HSET', key, 'state', 'dead', 'attempts', attempt, 'error', err, 'finished_at', now)
    retain(kept, key, job)
    tell_parent(stream, key, record[6], job, 'dead', err)
  end
  if current then
    -- A broadcast job's waiters read their group's outcome themselves.
    if broadcast then notify(key, ARGV[4], job) else notify(key, ARGV[4], job, 'dead', err) end
    trim_finished(kept, ARGV[3])
    emit(KEYS[10], ARGV[15], 'dead', job, attempt, group, err)
  end
end
refill_after_ack(stream, KEYS[6], KEYS[7], ARGV[3])
wake_relays(ARGV[4])
return 1
