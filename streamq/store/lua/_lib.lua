-- Shared helpers: scripts.py puts this file in front of every script.

-- The states of a job that still holds its id (enqueueing the id again changes nothing).
-- A flow's step is 'held' while the flow is being created (store/flows.py), and a parent
-- 'waiting_children' until its children finished.
local UNFINISHED = {
  waiting = true, delayed = true, active = true, retrying = true, held = true,
  waiting_children = true,
}
local TERMINAL = { completed = true, dead = true, cancelled = true }
-- The consumer that holds the entries a stopping consumer handed back until a reclaim sweep
-- takes them (release.lua, reclaim.lua): no consumer of streamq's is named with a space.
local HANDED_BACK = 'handed back'

-- The server's clock: milliseconds (for scores) and "seconds.micros" (for records).
local function server_time()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
    t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- The due time `delay` ms from now by the server's clock, in ms rounded up: a job is promoted
-- once the clock's (rounded down) millisecond reaches it, so rounding now down too would start
-- it up to 1 ms before its delay ran out.
local function due_after(delay)
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.ceil(tonumber(t[2]) / 1000) + delay
end

-- XINFO GROUPS as a list of {name=, pending=, last=, lag=}; empty when the stream does not exist.
local function groups_of(stream)
  if redis.call('EXISTS', stream) == 0 then return {} end
  local groups = {}
  for _, flat in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local g = {}
    for i = 1, #flat, 2 do g[flat[i]] = flat[i + 1] end
    groups[#groups + 1] = {
      name = g['name'], pending = g['pending'], last = g['last-delivered-id'], lag = g['lag'],
    }
  end
  return groups
end

-- A stream id's two numbers, and whether id `a` comes before id `b`.
local function parse_id(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function older(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  return am < bm or (am == bm and as < bs)
end

-- Whether `consumer` of `group` holds the pending entry `id`.
local function owns(stream, group, consumer, id)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  return p[1] ~= nil and p[1][2] == consumer
end

-- Acknowledge an entry, and delete it at once when its group is the stream's only reader
-- (with several groups the periodic trim removes what every group has acknowledged).
local function ack(stream, group, id, only_group)
  redis.call('XACK', stream, group, id)
  if only_group then redis.call('XDEL', stream, id) end
end

-- Results and errors up to this size ride in the message that tells waiters a job finished.
local OUTCOME_IN_MESSAGE = 65536

-- Tell the wait_for calls registered on this job (the record's 'w', see watch_job.lua) that it
-- finished: one message on the queue's channel, whatever their number (client/notices.py).
-- Given its final `state` (and the result or error, `detail`), the message carries them, so a
-- waiter need not read them back: 'outcome<TAB>state<TAB>detail length<TAB>detail job id'.
local function notify(job_key, channel, job, state, detail)
  if tonumber(redis.call('HGET', job_key, 'w') or '0') > 0 then
    detail = detail or ''
    if state and #detail <= OUTCOME_IN_MESSAGE then
      redis.call('PUBLISH', channel,
        'outcome\t' .. state .. '\t' .. #detail .. '\t' .. detail .. job)
    else
      redis.call('PUBLISH', channel, 'finished\t' .. job)
    end
    redis.call('HDEL', job_key, 'w')
  end
end

-- Workflows (store/flows.py). A flow's steps carry 'fl' (the flow's creation token); a child
-- 'pa' (its parent: queue<TAB>id); a parent 'ch' (its children: queue<TAB>id per line), 'wc'
-- (children not finished yet), 'ocf' (on_child_failure: 'fail' or 'ignore'), 'dl' (its start
-- delay in ms, counted from its release) and, until released, its payload 'p' and 'priority'.
-- A parent keeps what each child ended with in fields of its own record ('r:<child id>':
-- 'c' .. result, or 'x' .. error), so they go with the record and are read in one call.
-- A child that finishes tells its parent through its own queue's outbox (a stream): on a
-- cluster the parent may live in another slot, so flow_apply.lua applies it apart, once per
-- child; see worker/relay.py.
local flow_told = false

-- 'pg' on a child is the generation of its parent it runs for: a parent replayed by retry_dead
-- counts one more ('gen'), so what a child of an earlier one ends with is ignored.
local function tell_parent(stream, key, parent, job, state, detail)
  if not parent then return end
  redis.call('XADD', string.sub(stream, 1, #stream - 6) .. 'outbox', '*', 'pa', parent,
    'c', job, 's', state, 'd', detail or '', 'g', redis.call('HGET', key, 'pg') or 0)
  flow_told = true
end

-- Wake the queue's relays once per call that told parents anything.
local function wake_relays(channel)
  if flow_told then
    redis.call('PUBLISH', channel, 'flow')
    flow_told = false
  end
end

-- A record's fields as a table.
local function fields_of(key)
  local flat, f = redis.call('HGETALL', key), {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end

-- Retention of finished jobs' records: `r` is {index = the queue's 'finished' key, ttl = result
-- ttl (s), keep = how many of the newest to keep}. A finished record expires after the ttl,
-- and its id joins the index (a list, in finishing order) so that only the newest `keep` stay
-- (trim_finished): memory stays bounded however many jobs flow.
local function retention(index, ttl, keep)
  return { index = index, ttl = tonumber(ttl), keep = tonumber(keep) }
end

-- The key of a job's log lines (job.log), from its record's key: QueueKeys.job_logs.
local function logs_key(key, job)
  return string.sub(key, 1, #key - #job - 4) .. 'logs:' .. job
end

-- `logged`: whether the job has log lines (its record's 'lg', set by job_note.lua); nil: look.
local function retain(r, key, job, logged)
  redis.call('EXPIRE', key, r.ttl)
  if logged == nil then logged = redis.call('HEXISTS', key, 'lg') == 1 end
  if logged then redis.call('EXPIRE', logs_key(key, job), r.ttl) end
  redis.call('RPUSH', r.index, job)
end

-- Most records one call removes: lowering keep_finished a lot is then worked off over the next
-- finishes, never in one long call.
local TRIM_MOST = 1000

-- Remove the records of the oldest finished jobs past `keep`. An id whose record is gone
-- already (its ttl) or is an unfinished job's again (enqueued anew) is only dropped from the
-- index.
local function trim_finished(r, prefix)
  local excess = redis.call('LLEN', r.index) - r.keep
  if excess <= 0 then return end
  for _, job in ipairs(redis.call('LPOP', r.index, math.min(excess, TRIM_MOST))) do
    local key = prefix .. job
    if TERMINAL[redis.call('HGET', key, 'state')] then
      redis.call('DEL', key, logs_key(key, job))
    end
  end
end

-- Broadcast jobs. While several groups read the stream, each group's outcome of a job is kept
-- in fields of its own in the job's record ('state G', 'attempts G', 'result G', 'error G',
-- 'finished G', and 'entry G' for the entry a retry or replay in G runs on), and 'bc' marks
-- the record. The job's own 'state' stays unfinished, holding its id, until no group owes it
-- any more (settle_broadcast): one group's result is never the job's.

-- Where group `g` (one of groups_of) stands with the job whose record fields are `f`: its
-- recorded outcome, 'active' while its entry is pending in the group, else the state it waits
-- in; nil when the group acknowledged the entry with no outcome recorded (nothing owed).
local function group_state(stream, g, f)
  local name = g.name
  local s = f['state ' .. name]
  if s and TERMINAL[s] then return s end
  -- A record only one group finished so far (no 'bc'): its own state is that group's.
  if not s and not f['bc'] and TERMINAL[f['state']] then return f['state'] end
  local entry = f['entry ' .. name] or f['entry']
  if entry and not older(g.last, entry) then
    if #redis.call('XPENDING', stream, name, entry, entry, 1) > 0 then return 'active' end
    if not s then return nil end
  end
  return s or f['state']
end

-- A job's state as one group sees it: the group's own on a broadcast record (`bc`) that has one,
-- else the job's (`state`).
local function state_in_group(bc, group_state, state)
  if bc and group_state then return group_state end
  return state
end

-- Whether a group of the stream still owes the broadcast job whose record fields are `f`.
local function still_owed(stream, groups, f)
  for _, g in ipairs(groups) do
    local s = group_state(stream, g, f)
    if s and not TERMINAL[s] then return true end
  end
  return false
end

-- Whether a group that finished its part of a broadcast job (marked 'bc' by the caller) was the
-- last one owing it: then the job finishes ('completed' when no group dead-lettered it, else
-- 'dead' with that group's error), frees its id and is retained like others (`r`, see retain).
-- Returns true if so.
local function settle_broadcast(stream, key, job, groups, r, now)
  local f = fields_of(key)
  if TERMINAL[f['state']] or still_owed(stream, groups, f) then return false end
  local outcome, err = 'completed', nil
  for field, value in pairs(f) do
    local group = string.match(field, '^state (.+)$')
    if group and value == 'dead' and (not err or group < err[1]) then
      outcome, err = 'dead', { group, f['error ' .. group] or '' }
    elseif group and value == 'cancelled' and outcome == 'completed' then
      outcome = 'cancelled'
    end
  end
  redis.call('HSET', key, 'state', outcome, 'finished_at', now)
  local detail = ''
  if err then
    detail = 'in group ' .. err[1] .. ': ' .. err[2]
    redis.call('HSET', key, 'error', detail)
  end
  retain(r, key, job)
  -- A broadcast step has no result of its own: its parent gets none.
  tell_parent(stream, key, f['pa'], job, outcome, detail)
  return true
end

-- Entries waiting undelivered in the stream for group `g` (one of groups_of). Redis 7 knows its
-- lag (6.2 does not: the length less its pending entries stands in, an upper bound); the lag still
-- counts an undelivered entry deleted since (a cancel), so it is bounded by that too.
local function behind_of(g, length)
  local most = math.max(0, length - g.pending)
  if type(g.lag) ~= 'number' then return most end
  return math.min(g.lag, most)
end

-- Entries waiting undelivered in the stream, for the group furthest ahead (the window serves
-- the fastest reader); nil when no group reads the stream yet.
local function undelivered(stream, groups)
  if #groups == 0 then return nil end
  local length = redis.call('XLEN', stream)
  if #groups == 1 then return math.max(0, length - groups[1].pending) end -- acked = deleted
  local least
  for _, g in ipairs(groups) do
    local behind = behind_of(g, length)
    if not least or behind < least then least = behind end
  end
  return least
end

-- How many more entries the ready window takes: the live consumers' prefetch less what already
-- waits undelivered. 0 while no consumer is registered: jobs stay staged, in order.
local function window_room(stream, window, groups)
  local total = tonumber(redis.call('HGET', window, 'total') or '0')
  local waiting = undelivered(stream, groups)
  if total <= 0 or not waiting then return 0 end
  return total - waiting
end

-- The same, cheaper when the stream is short: its length bounds what waits undelivered, so
-- (with a group reading) a length under the total leaves at least that much room.
local function window_room_fast(stream, window)
  local total = tonumber(redis.call('HGET', window, 'total') or '0')
  if total <= 0 then return 0 end
  local length = redis.call('XLEN', stream)
  if length < total then return total - length end
  return window_room(stream, window, groups_of(stream))
end

-- Recompute the window's total from the live registrations, dropping expired ones.
local function recount_window(window, now_ms)
  local total = 0
  local fields = redis.call('HGETALL', window)
  for i = 1, #fields, 2 do
    if fields[i] ~= 'total' then
      local prefetch, expiry = string.match(fields[i + 1], '^(%d+):(%d+)$')
      if prefetch and tonumber(expiry) > now_ms then
        total = total + tonumber(prefetch)
      else
        redis.call('HDEL', window, fields[i])
      end
    end
  end
  redis.call('HSET', window, 'total', total)
  return total
end

-- Fair queues (enqueue(..., fairness_key=K)). A job with a key is staged in its key's own set
-- ('kstaged:K', scored like the staged set), and the key is a member of the ring ('fair'), a
-- sorted set of the keys with waiting work scored by their turn: refilling the window takes the
-- key whose turn is first, moves its best job, and gives it the next turn at the back ('fair:turn'
-- counts them). Jobs without a key stay in the staged set, which takes its turns in the ring as
-- one key (FAIR_DEFAULT) while any key has work. A key whose set empties leaves the ring, and the
-- ring and its counter go when the last does: a queue that never uses keys keeps today's path.
-- A key's set exists exactly while the key is in the ring or held back (below).
local FAIR_DEFAULT = '\t'

-- The ring, its turn counter, the prefix of the keys' sets and the count of the jobs in them,
-- from the staged set's key (QueueKeys names them too).
local function fair_keys(staged)
  local base = string.sub(staged, 1, #staged - 6)
  return base .. 'fair', base .. 'fair:turn', base .. 'kstaged:', base .. 'fair:waiting'
end

-- Keys held back by per-key limits (consume(per_key_concurrency=, per_key_rate_limit=)) wait
-- outside the ring: 'fair:parked' (scored by when a key may move its next job, under a rate
-- limit) and 'fair:full' (keys at their concurrency, scored by when they were parked or last
-- audited; a job of theirs finishing brings them back). With the ring, they are the keys with
-- waiting work.
local function held_back_keys(staged)
  local base = string.sub(staged, 1, #staged - 6)
  return base .. 'fair:parked', base .. 'fair:full'
end

-- The limits per group ('fair:limits': group -> "concurrency rate period_ms", 0 for none; the
-- strictest its live consumers registered, see register.lua), the registrations they come
-- from ('fair:limits:by'), and per group the entries of keyed jobs in the window or running
-- ('kact:<group>', members "key<TAB>entry id", all scored 0 so that a key's are a lex range) and
-- per group and key the recent moves into the window ('kmoves:<group> <key>', scored by time).
local function limit_keys(staged)
  local base = string.sub(staged, 1, #staged - 6)
  return base .. 'fair:limits', base .. 'fair:limits:by', base .. 'kact:', base .. 'kmoves:'
end

-- Whether anything is staged, keyed or not.
local function anything_staged(staged)
  local ring = fair_keys(staged)
  local parked, full = held_back_keys(staged)
  return redis.call('EXISTS', staged, ring, parked, full) > 0
end

-- Give `key` a turn at the back of the ring unless it has one.
local function join_ring(ring, turn, key)
  redis.call('ZADD', ring, 'NX', redis.call('GET', turn) or 0, key)
end

-- A held-back key takes turns again (the unkeyed jobs too, which have none while the ring was
-- empty of keys).
local function rejoin(staged, fk)
  local ring, turn = fair_keys(staged)
  join_ring(ring, turn, fk)
  if redis.call('EXISTS', staged) == 1 then join_ring(ring, turn, FAIR_DEFAULT) end
end

-- Forget the ring's counters once no key waits, in the ring or held back.
local function drop_empty_ring(staged)
  local ring, turn, _, waiting = fair_keys(staged)
  local parked, full = held_back_keys(staged)
  if redis.call('EXISTS', ring, parked, full) == 0 then redis.call('DEL', turn, waiting) end
end

-- Stage a job: higher priority first, FIFO within a priority (|priority| <= 2^20 keeps the
-- score exact in a double); with a fairness key `fk`, in that key's set. The FIFO sequence starts
-- again when nothing at all is staged.
local function stage(staged, seq_key, id, priority, fk)
  local ring, turn, kprefix, waiting = fair_keys(staged)
  local parked, full = held_back_keys(staged)
  local keyed_work = redis.call('EXISTS', ring, parked, full) > 0
  local unkeyed_work = redis.call('EXISTS', staged) == 1
  if not keyed_work and not unkeyed_work then redis.call('SET', seq_key, 0) end
  local score = -priority * 4294967296 + redis.call('INCR', seq_key)
  if fk and fk ~= '' then
    -- Unkeyed jobs already waiting take their turns with the keys from now on.
    if not keyed_work and unkeyed_work then join_ring(ring, turn, FAIR_DEFAULT) end
    local set = kprefix .. fk
    -- A key with jobs staged already has its place, in the ring or held back.
    local new_key = redis.call('EXISTS', set) == 0
    if redis.call('ZADD', set, score, id) == 1 then redis.call('INCR', waiting) end
    if new_key then join_ring(ring, turn, fk) end
  else
    if keyed_work then join_ring(ring, turn, FAIR_DEFAULT) end
    redis.call('ZADD', staged, score, id)
  end
end

-- Stage a job that runs again, by its priority (and key) like a new one: a due retry (for the
-- group it failed in, as attempt `attempt`) or a replayed dead job (for a group it died in,
-- attempt '-': fresh). Its record keeps the payload ('p') and whom the entries are for ('to':
-- "group attempt ...", read by refill, which deletes it). A job staged already (due in another
-- group too) keeps its place.
local function stage_again(staged, seq_key, key, id, payload, group, attempt)
  local r = redis.call('HMGET', key, 'to', 'priority', 'fk')
  if r[1] then
    redis.call('HSET', key, 'to', r[1] .. ' ' .. group .. ' ' .. attempt)
    return
  end
  stage(staged, seq_key, id, tonumber(r[2] or '0'), r[3])
  redis.call('HSET', key, 'p', payload, 'to', group .. ' ' .. attempt)
end

-- Move one staged job into the stream (its payload and whom it is for wait in its record); a
-- keyed job's entry carries its key ('k', for the consumer's per-key start permits). Returns
-- its entry id and, for a job run again in some groups only, the entry of each such group
-- (nil: the entry is for every group).
local function move_staged(stream, job_prefix, id)
  local key = job_prefix .. id
  local r = redis.call('HMGET', key, 'p', 'to', 'bc', 'fk')
  local payload, entry, targets = r[1], nil, nil
  if not payload then return nil, nil end
  local command = { 'XADD', stream, '*', 'j', id, 'p', payload }
  if r[4] then
    command[#command + 1] = 'k'
    command[#command + 1] = r[4]
  end
  if r[2] then
    targets = {}
    for group, attempt in string.gmatch(r[2], '(%S+) (%S+)') do
      local c = { unpack(command) }
      if attempt ~= '-' then
        c[#c + 1] = 'a'
        c[#c + 1] = attempt
      end
      c[#c + 1] = 'g'
      c[#c + 1] = group
      entry = redis.call(unpack(c))
      targets[group] = entry
      -- On a broadcast job, each group that runs it again does so on an entry of its own.
      if r[3] then redis.call('HSET', key, 'entry ' .. group, entry) end
    end
  else
    entry = redis.call(unpack(command))
  end
  if entry then
    if not r[3] then redis.call('HSET', key, 'entry', entry) end
    redis.call('HDEL', key, 'p', 'to')
  end
  return entry, targets
end

-- The per-key limits of the groups that set any, as a list of {group=, conc=, rate=, period=};
-- nil when none does.
local function key_limits(staged)
  local flat = redis.call('HGETALL', (limit_keys(staged)))
  if #flat == 0 then return nil end
  local limits = {}
  for i = 1, #flat, 2 do
    local c, r, p = string.match(flat[i + 1], '^(%d+) (%d+) (%d+)$')
    if c then
      limits[#limits + 1] = {
        group = flat[i], conc = tonumber(c), rate = tonumber(r), period = tonumber(p),
      }
    end
  end
  if #limits == 0 then return nil end
  return limits
end

-- The bounds of key `fk`'s members in a 'kact:<group>' set, for ZLEXCOUNT / ZRANGEBYLEX: keys
-- hold no whitespace, so "fk<TAB>..." are exactly the members from '[fk\t' to before '(fk\n'.
local function key_range(fk)
  return '[' .. fk .. '\t', '(' .. fk .. '\n'
end

-- Why key `fk` may not move a job into the window now: 'full' (a group runs its concurrency
-- of the key's jobs, counting those waiting in the window), or the ms until a rate limit lets
-- its next job in; nil when it may.
local function key_blocked(staged, limits, fk, now)
  local _, _, active, moves = limit_keys(staged)
  for _, l in ipairs(limits) do
    if l.conc > 0 then
      local from, to = key_range(fk)
      if redis.call('ZLEXCOUNT', active .. l.group, from, to) >= l.conc then return 'full' end
    end
  end
  local wait = 0
  for _, l in ipairs(limits) do
    if l.rate > 0 then
      local log = moves .. l.group .. ' ' .. fk
      redis.call('ZREMRANGEBYSCORE', log, '-inf', now - l.period)
      if redis.call('ZCARD', log) >= l.rate then
        local oldest = tonumber(redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')[2])
        wait = math.max(wait, oldest + l.period - now)
      end
    end
  end
  if wait > 0 then return wait end
  return nil
end

-- Count a keyed job's entry against its key's limits in the groups it is for (`targets`, see
-- move_staged).
local function key_moved(staged, limits, fk, entry, targets, now)
  local _, _, active, moves = limit_keys(staged)
  for _, l in ipairs(limits) do
    local e = entry
    if targets then e = targets[l.group] end
    if e and l.conc > 0 then redis.call('ZADD', active .. l.group, 0, fk .. '\t' .. e) end
    if e and l.rate > 0 then
      local log = moves .. l.group .. ' ' .. fk
      redis.call('ZADD', log, now, e)
      redis.call('PEXPIRE', log, l.period + 1000)
    end
  end
end

-- Per group, whether it counts keyed entries at all (looked up once per script call: a queue
-- with keys but no limits pays one EXISTS per call, not a ZREM per job).
local counting = {}

-- A keyed job's entry left `group` (finished, failed, cancelled, taken back): its key may move
-- another job in, so a key held back at its concurrency takes turns again.
local function key_done(staged, group, fk, entry)
  if not fk or fk == '' then return end
  local _, _, active = limit_keys(staged)
  if counting[group] == nil then counting[group] = redis.call('EXISTS', active .. group) == 1 end
  if counting[group] and redis.call('ZREM', active .. group, fk .. '\t' .. entry) == 1 then
    local _, full = held_back_keys(staged)
    if redis.call('ZREM', full, fk) == 1 then rejoin(staged, fk) end
  end
end

-- Keys whose rate limit lets a job in again take turns again: at most `most` of them, the
-- others at a later refill.
local function unpark_due(staged, now, most)
  local parked = held_back_keys(staged)
  for _, fk in ipairs(redis.call('ZRANGEBYSCORE', parked, '-inf', now, 'LIMIT', 0, most)) do
    redis.call('ZREM', parked, fk)
    rejoin(staged, fk)
  end
end

-- Move the best staged jobs into the stream, at most `room` of them: by priority and FIFO, or,
-- while keys have work, one job per key in turn, skipping (holding back) keys at a limit.
-- Returns how many moved.
local function refill(stream, staged, job_prefix, room)
  if room <= 0 then return 0 end
  local ring, turn, kprefix, waiting = fair_keys(staged)
  local parked = held_back_keys(staged)
  if redis.call('EXISTS', ring, parked) == 0 then
    local popped = redis.call('ZPOPMIN', staged, room)
    for i = 1, #popped, 2 do move_staged(stream, job_prefix, popped[i]) end
    return #popped / 2
  end
  local limits, now = key_limits(staged), nil
  if limits then
    now = server_time()
    unpark_due(staged, now, room)
  end
  local moved, soonest = 0, nil
  while moved < room do
    local head = redis.call('ZRANGE', ring, 0, 0)[1]
    if not head then break end
    local set = staged
    if head ~= FAIR_DEFAULT then set = kprefix .. head end
    local blocked = limits and set ~= staged and key_blocked(staged, limits, head, now)
    if blocked then
      redis.call('ZREM', ring, head)
      local parked_at, full = held_back_keys(staged)
      if blocked == 'full' then
        redis.call('ZADD', full, now, head)
      else
        if not soonest then
          local first = redis.call('ZRANGE', parked_at, 0, 0, 'WITHSCORES')[2]
          soonest = first and tonumber(first) or math.huge
        end
        -- The schedulers sleep until the soonest time they know of: tell them of a sooner one
        -- (the channel is named like the staged set; QueueKeys.wake).
        if now + blocked < soonest then
          soonest = now + blocked
          redis.call('PUBLISH', string.sub(staged, 1, #staged - 6) .. 'wake', 'due')
        end
        redis.call('ZADD', parked_at, now + blocked, head)
      end
    else
      local popped = redis.call('ZPOPMIN', set)
      if popped[1] then
        local entry, targets = move_staged(stream, job_prefix, popped[1])
        moved = moved + 1
        if set ~= staged then
          redis.call('INCRBY', waiting, -1)
          if limits and entry then key_moved(staged, limits, head, entry, targets, now) end
        end
      end
      if redis.call('EXISTS', set) == 1 then
        redis.call('ZADD', ring, redis.call('INCR', turn), head)
      else
        redis.call('ZREM', ring, head)
      end
    end
  end
  drop_empty_ring(staged)
  return moved
end

-- After entries left the window (finished, failed): let staged jobs take their place.
local function refill_after_ack(stream, staged, window, job_prefix)
  if anything_staged(staged) then
    refill(stream, staged, job_prefix, window_room(stream, window, groups_of(stream)))
  end
end

-- Take a staged job out of the queue's order (cancelled): from its key's set, and the key from
-- the ring (or from where it is held back) when that was its last job.
local function unstage(staged, id, fk)
  if fk and fk ~= '' then
    local ring, _, kprefix, waiting = fair_keys(staged)
    if redis.call('ZREM', kprefix .. fk, id) == 1 then
      redis.call('INCRBY', waiting, -1)
      if redis.call('EXISTS', kprefix .. fk) == 0 then
        local parked, full = held_back_keys(staged)
        redis.call('ZREM', ring, fk)
        redis.call('ZREM', parked, fk)
        redis.call('ZREM', full, fk)
        drop_empty_ring(staged)
      end
    end
  else
    redis.call('ZREM', staged, id)
  end
end

-- Add an immediate job: straight into the stream when it has default priority, nothing is
-- staged and the window has room (the fast path), else staged by priority. `room` is the
-- window's room as the caller last knew it (nil: look it up); returns the room left.
local function add_ready(stream, staged, seq, window, key, id, payload, enqueued_at, priority, room)
  room = room or window_room_fast(stream, window)
  if priority == 0 and room > 0 and not anything_staged(staged) then
    local entry = redis.call('XADD', stream, '*', 'j', id, 'p', payload)
    redis.call('HSET', key, 'state', 'waiting', 'entry', entry, 'enqueued_at', enqueued_at)
    return room - 1
  end
  stage(staged, seq, id, priority)
  redis.call('HSET', key, 'state', 'waiting', 'p', payload, 'priority', priority,
    'enqueued_at', enqueued_at)
  return room
end

-- Global concurrency (consume(global_concurrency=N)): each running job of a group holds a slot,
-- its entry id in the group's sorted set of slots scored by when the slot lapses (a heartbeat
-- renews it, so a dead consumer's slots come back after the visibility timeout). A consumer
-- that found no free slot adds SLOT_WAITER (scored +inf): the next slot freed is published on
-- the queue's channel ('slot<TAB>group') so that waiting consumers try again at once.
local SLOT_WAITER = '\twaiting'

local function free_slots(slots, channel, group, entries)
  if #entries == 0 or redis.call('EXISTS', slots) == 0 then return end
  if redis.call('ZREM', slots, unpack(entries)) > 0
    and redis.call('ZREM', slots, SLOT_WAITER) == 1 then
    redis.call('PUBLISH', channel, 'slot\t' .. group)
  end
end

-- Lifecycle events (Queue.events): the queue's capped stream of what happens to its jobs, written
-- by the script that makes each transition. `most` is how many it keeps (the manager's
-- keep_events; about that many: the stream is trimmed in whole nodes); 0 writes none.
local function emit(events, most, kind, job, attempt, group, detail)
  most = tonumber(most)
  if most <= 0 then return end
  local command = { 'XADD', events, 'MAXLEN', '~', most, '*', 't', kind, 'j', job, 'a', attempt }
  if group then
    command[#command + 1] = 'g'
    command[#command + 1] = group
  end
  if detail then
    command[#command + 1] = 'd'
    command[#command + 1] = detail
  end
  redis.call(unpack(command))
end

-- Release a held step or a parent whose children all finished as a new job would go: to the
-- delayed set (its start delay counted from now) or the window / staged set. `room` as for
-- add_ready; returns the room left and whether a delayed job was added.
local function make_ready(stream, staged, seq, delayed, window, key, id, room)
  local r = redis.call('HMGET', key, 'p', 'priority', 'dl', 'enqueued_at', 'fk')
  local delay = tonumber(r[3] or '0')
  if delay > 0 then
    redis.call('ZADD', delayed, due_after(delay), id)
    redis.call('HSET', key, 'state', 'delayed')
    return room, true
  end
  if r[5] then  -- a fairness key: its turn, as a keyed enqueue
    stage(staged, seq, id, tonumber(r[2] or '0'), r[5])
    redis.call('HSET', key, 'state', 'waiting')
    return room or window_room_fast(stream, window), false
  end
  redis.call('HDEL', key, 'p')
  return add_ready(stream, staged, seq, window, key, id, r[1], r[4], tonumber(r[2] or '0'),
    room), false
end

-- Write a flow's step, held (invisible to consumers until the flow is released): its payload
-- and priority, its start delay 'dl', its parent ('' for the root) and its children (queue<TAB>id
-- per line, '' for none) with the policy for their failures, and its fairness key ('' for none).
local function hold_step(key, job, token, enqueued_at, payload, priority, delay, parent, policy,
  children, fk)
  redis.call('DEL', key, logs_key(key, job))
  if fk ~= '' then redis.call('HSET', key, 'fk', fk) end
  local count = 0
  if children ~= '' then count = select(2, string.gsub(children, '\n', '')) + 1 end
  redis.call('HSET', key, 'state', 'held', 'fl', token, 'p', payload, 'priority', priority,
    'dl', delay, 'enqueued_at', enqueued_at, 'wc', count)
  if parent ~= '' then redis.call('HSET', key, 'pa', parent) end
  if count > 0 then redis.call('HSET', key, 'ch', children, 'ocf', policy) end
end
