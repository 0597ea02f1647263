-- Finish entries that ran to completion (or that another group's retry targeted: ack only).
-- KEYS[1] stream, KEYS[2] completed counter, KEYS[3] staged, KEYS[4] window, KEYS[5] finished,
-- KEYS[6] the group's slots (global concurrency), KEYS[7] events
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] job key prefix, ARGV[4] the queue's channel,
-- ARGV[5] result ttl (s), ARGV[6] entries to read for the consumer afterwards (0: none),
-- ARGV[7] finished records to keep, ARGV[8] events kept (0: none written), ARGV[9] how many
-- starts follow, ARGV[10] the history key prefix, ARGV[11] a history hash's ttl (s),
-- ARGV[12] how many latency buckets follow; then per bucket: its index, the first starts in it
-- (store/history.py); then per start: job id, attempt (a "started" event each, written first);
-- then per entry: entry id, job id ('' = only acknowledge: cancelled, or another group's
-- retry), attempt, result
-- An entry this consumer no longer owns (it was reclaimed) is left to its new owner. With
-- several groups reading the stream the outcome is this group's (see settle_broadcast).
-- Staged jobs then take the room the finished entries left in the window, and the consumer's
-- next entries come back in the same round trip (a non-blocking XREADGROUP).
-- Returns {per entry 1 (finished) or 0 (no longer ours), {{entry id, {field, value, ...}}, ...}}.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local now_ms, now = server_time()
local kept = retention(KEYS[5], ARGV[5], ARGV[7])
local groups = groups_of(stream)
local out, owned, completed = {}, {}, 0
local starts = 13 + 2 * tonumber(ARGV[12])
local first = starts + 2 * tonumber(ARGV[9])
local events = tonumber(ARGV[8]) > 0
for i = starts, first - 1, 2 do
  emit(KEYS[7], ARGV[8], 'started', ARGV[i], ARGV[i + 1], group)
end
for i = first, #ARGV, 4 do
  local entry, job = ARGV[i], ARGV[i + 1]
  if owns(stream, group, consumer, entry) then
    owned[#owned + 1] = entry
    if job ~= '' then
      local key = ARGV[3] .. job
      local record = redis.call('HMGET', key, 'entry', 'w', 'error', 'bc', 'entry ' .. group,
        'state', 'state ' .. group, 'lg', 'pa', 'fk')
      key_done(KEYS[3], group, record[10], entry)
      -- The record is this entry's unless a later delivery of the job in this group (a retry
      -- of it) or, on a work queue, in another group owns it. A job cancelled while its handler
      -- ran to the end stays cancelled.
      if #groups > 1 or record[4] then
        if (record[5] or record[1]) == entry and record[7] ~= 'cancelled' then
          redis.call('HSET', key, 'bc', 1, 'state ' .. group, 'completed',
            'attempts ' .. group, ARGV[i + 2], 'result ' .. group, ARGV[i + 3],
            'finished ' .. group, now)
          redis.call('HDEL', key, 'error ' .. group)
          settle_broadcast(stream, key, job, groups, kept, now)
          if events then
            emit(KEYS[7], ARGV[8], 'completed', job, ARGV[i + 2], group, ARGV[i + 3])
          end
          if record[2] then notify(key, ARGV[4], job) end
        end
      elseif record[1] == entry and record[6] ~= 'cancelled' then
        redis.call('HSET', key, 'state', 'completed', 'attempts', ARGV[i + 2],
          'result', ARGV[i + 3], 'finished_at', now)
        if record[3] then redis.call('HDEL', key, 'error') end
        retain(kept, key, job, record[8] ~= false)
        tell_parent(stream, key, record[9], job, 'completed', ARGV[i + 3])
        if record[2] then notify(key, ARGV[4], job, 'completed', ARGV[i + 3]) end
        if events then
          emit(KEYS[7], ARGV[8], 'completed', job, ARGV[i + 2], group, ARGV[i + 3])
        end
      end
      completed = completed + 1
    else
      -- Acknowledged without running (cancelled, or another group's retry): its key, if any,
      -- is in the entry.
      local e = redis.call('XRANGE', stream, entry, entry)[1]
      for k = 1, e and #e[2] or 0, 2 do
        if e[2][k] == 'k' then key_done(KEYS[3], group, e[2][k + 1], entry) end
      end
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #owned > 0 then
  free_slots(KEYS[6], ARGV[4], group, owned)
  redis.call('XACK', stream, group, unpack(owned))
  -- The only group reading the stream: delete at once (else the periodic trim does).
  if #groups == 1 then redis.call('XDEL', stream, unpack(owned)) end
end
if completed > 0 then
  redis.call('INCRBY', KEYS[2], completed)
  trim_finished(kept, ARGV[3])
end
-- This minute's history: the completions and the latencies of the starts, counted per call.
-- The hash's expiry is set when a field is new (so when it is created), not on every call.
if completed > 0 or starts > 13 then
  local hist = ARGV[10] .. string.format('%d', math.floor(now_ms / 60000) * 60)
  local new = completed > 0 and redis.call('HINCRBY', hist, 'c', completed) == completed
  for i = 13, starts - 1, 2 do
    if redis.call('HINCRBY', hist, 'l' .. ARGV[i], ARGV[i + 1]) == tonumber(ARGV[i + 1]) then
      new = true
    end
  end
  if new then redis.call('EXPIRE', hist, ARGV[11]) end
end
refill_after_ack(stream, KEYS[3], KEYS[4], ARGV[3])
wake_relays(ARGV[4])
local entries = {}
if tonumber(ARGV[6]) > 0 then
  local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', ARGV[6],
    'STREAMS', stream, '>')
  if reply then entries = reply[1][2] end
end
return { out, entries }
