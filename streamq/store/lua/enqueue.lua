-- Add jobs, each unless an unfinished job already holds its id.
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] staged seq, KEYS[4] delayed, KEYS[5] window,
-- KEYS[6] events
-- ARGV[1] job key prefix, ARGV[2] wake channel, and for the whole batch ARGV[3] enqueued_at
-- (unix s), ARGV[4] priority, ARGV[5] delay (ms), ARGV[6] events kept (0: none written), ARGV[7]
-- '1' to register a waiter on each job (Queue.call: see watch_job.lua), ARGV[8] the jobs'
-- fairness key ('' for none: see stage in _lib.lua); then per job: id, payload
-- A job goes straight into the stream (the fast path) when it is immediate, of default priority,
-- nothing is staged and the window has room; a delayed job waits in the delayed set; the rest
-- is staged by priority (and key) and moved into the stream as the window makes room.
-- Returns per job 1 (added) or 0 (a duplicate: nothing changed).
local stream, staged, seq, delayed, window = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, enqueued_at = ARGV[1], ARGV[3]
local priority, delay, fk = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[8]
local added, room, due, wake = {}, nil, nil, false
for i = 9, #ARGV, 2 do
  local id, payload = ARGV[i], ARGV[i + 1]
  local key = prefix .. id
  local r = redis.call('HMGET', key, 'state', 'bc')
  local state = r[1]
  -- A broadcast job that no group owes any more (the last one that did was removed) is over.
  if state and UNFINISHED[state] and r[2]
    and not still_owed(stream, groups_of(stream), fields_of(key)) then
    notify(key, ARGV[2], id)
    state = 'completed'
  end
  if state and UNFINISHED[state] then
    added[#added + 1] = 0
    if ARGV[7] == '1' then redis.call('HINCRBY', key, 'w', 1) end
  else
    if state then redis.call('DEL', key, logs_key(key, id)) end
    if delay > 0 then
      due = due or due_after(delay)
      local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
      if not first[2] or due < tonumber(first[2]) then wake = true end
      redis.call('ZADD', delayed, due, id)
      redis.call('HSET', key, 'state', 'delayed', 'p', payload, 'priority', priority,
        'enqueued_at', enqueued_at)
      if fk ~= '' then redis.call('HSET', key, 'fk', fk) end
    elseif fk ~= '' then
      -- A keyed job always takes its key's turn (no fast path).
      room = room or window_room_fast(stream, window)
      stage(staged, seq, id, priority, fk)
      redis.call('HSET', key, 'state', 'waiting', 'p', payload, 'priority', priority,
        'enqueued_at', enqueued_at, 'fk', fk)
    else
      room = add_ready(stream, staged, seq, window, key, id, payload, enqueued_at, priority, room)
    end
    added[#added + 1] = 1
    if ARGV[7] == '1' then redis.call('HSET', key, 'w', 1) end
    emit(KEYS[6], ARGV[6], 'enqueued', id, 0)
  end
end
if room and room > 0 and anything_staged(staged) then
  refill(stream, staged, prefix, room)
end
if wake then redis.call('PUBLISH', ARGV[2], 'due') end
return added
