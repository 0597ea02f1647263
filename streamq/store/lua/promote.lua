-- The scheduler's step: due retries (each for the group it failed in) and due delayed jobs are
-- staged by priority, and staged jobs fill the window's room (a fairness key held back by its
-- rate limit takes turns again when due: the wait returned counts it).
-- KEYS[1] stream, KEYS[2] retry zset, KEYS[3] retry payloads, KEYS[4] delayed, KEYS[5] staged,
-- KEYS[6] staged seq, KEYS[7] window
-- ARGV[1] job key prefix, ARGV[2] most jobs to move from each set in one call
-- Returns {moved, ms until the next retry, delayed job or held-back key is due (-1: none)}.
local stream, retry, payloads, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local staged, seq, window = KEYS[5], KEYS[6], KEYS[7]
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local now_ms = server_time()
-- How long a key stays held back at its concurrency before its count is checked, and how many
-- keys one call checks.
local AUDIT_AFTER_MS, AUDIT_BATCH = 5000, 50

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

-- The safety net of per-key concurrency: a key held back at its concurrency for a while has
-- its count checked against the stream, so an entry that left it by a path that did not say
-- so (a bug; every script that removes one calls key_done) cannot hold the key back for ever.
-- An entry counts while it is in the stream, undelivered to its group or pending in it.
local parked, full = held_back_keys(staged)
local due_audit = redis.call('ZRANGEBYSCORE', full, '-inf', now_ms - AUDIT_AFTER_MS,
  'LIMIT', 0, AUDIT_BATCH)
if #due_audit > 0 then
  local limits, by_name = key_limits(staged) or {}, {}
  for _, g in ipairs(groups_of(stream)) do by_name[g.name] = g end
  local _, _, active = limit_keys(staged)
  for _, fk in ipairs(due_audit) do
    local room = true
    for _, l in ipairs(limits) do
      if l.conc > 0 then
        local set, g = active .. l.group, by_name[l.group]
        local from, to = key_range(fk)
        local members = redis.call('ZRANGEBYLEX', set, from, to)
        for _, member in ipairs(members) do
          local entry = string.sub(member, #fk + 2)
          local gone = #redis.call('XRANGE', stream, entry, entry) == 0
            or (g and not older(g.last, entry)
              and #redis.call('XPENDING', stream, g.name, entry, entry, 1) == 0)
          if gone then
            redis.call('ZREM', set, member)
          end
        end
        if redis.call('ZLEXCOUNT', set, from, to) >= l.conc then room = false end
      end
    end
    if room then
      redis.call('ZREM', full, fk)
      rejoin(staged, fk)
    else
      redis.call('ZADD', full, now_ms, fk)
    end
  end
end

refill(stream, staged, prefix, window_room(stream, window, groups_of(stream)))

local wait = -1
for _, set in ipairs({ retry, delayed, parked }) do
  local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
  -- A key due already waits for room in the window, which acknowledgements make (and refill).
  if set == parked and first[2] and tonumber(first[2]) <= now_ms then
    first = redis.call('ZRANGEBYSCORE', parked, '(' .. now_ms, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  end
  if first[2] then
    local ms = math.max(0, tonumber(first[2]) - now_ms)
    if wait < 0 or ms < wait then wait = ms end
  end
end
return { #due + #ready, wait }
