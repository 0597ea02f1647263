-- Cancel an unfinished job: waiting, delayed, retrying or running. It leaves every place it
-- waits in (staged, delayed, the retries, the stream while undelivered) and ends 'cancelled' at
-- once. An entry a consumer holds stays pending until that consumer acknowledges it: a message
-- on the queue's channel ('cancel<TAB>entry id') tells it to stop the handler, and its heartbeat
-- (heartbeat.lua) or the consumer that reclaims the entry (rerun.lua) finds the state if the
-- message is lost. A broadcast job is cancelled in every group that has not finished it; the
-- entries of groups not yet delivered them go to the 'cancels' set, so that the consumer that
-- reads one acknowledges it without running it.
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] delayed, KEYS[4] job key, KEYS[5] finished,
-- KEYS[6] retry zset, KEYS[7] retry payloads, KEYS[8] cancels, KEYS[9] events
-- ARGV[1] job id, ARGV[2] the queue's channel, ARGV[3] result ttl (s), ARGV[4] finished records
-- to keep, ARGV[5] job key prefix, ARGV[6] events kept (0: none written)
-- Returns {1, the job's children (a flow's parent: queue<TAB>id per line)} if the job was
-- cancelled, else 0 (unknown or finished).
local stream, key, job, channel = KEYS[1], KEYS[4], ARGV[1], ARGV[2]
local f = fields_of(key)
if not f['state'] or TERMINAL[f['state']] then return 0 end
local groups = groups_of(stream)
local now_ms, now = server_time()
local kept = retention(KEYS[5], ARGV[3], ARGV[4])
unstage(KEYS[2], job, f['fk'])
redis.call('ZREM', KEYS[3], job)
for _, g in ipairs(groups) do
  local member = g.name .. '\t' .. job
  if redis.call('ZREM', KEYS[6], member) == 1 then redis.call('HDEL', KEYS[7], member) end
end
-- A flow's step keeps its payload: retry_dead of the parent it failed replays it.
if f['pa'] then
  redis.call('HDEL', key, 'to')
  if not f['p'] and f['entry'] then
    local e = redis.call('XRANGE', stream, f['entry'], f['entry'])
    if e[1] then
      for i = 1, #e[1][2], 2 do
        if e[1][2][i] == 'p' then redis.call('HSET', key, 'p', e[1][2][i + 1]) end
      end
    end
  end
else
  redis.call('HDEL', key, 'p', 'to')
end

local function stop_running(entry)
  redis.call('PUBLISH', channel, 'cancel\t' .. entry)
end

if f['bc'] or #groups > 1 then
  local cancelled, undelivered = false, {}
  for _, g in ipairs(groups) do
    local s = group_state(stream, g, f)
    if s and not TERMINAL[s] then
      cancelled = true
      redis.call('HSET', key, 'state ' .. g.name, 'cancelled', 'finished ' .. g.name, now)
      local entry = f['entry ' .. g.name] or f['entry']
      if s == 'active' then
        stop_running(entry)
      elseif entry and older(g.last, entry) then
        undelivered[g.name] = entry
      end
    end
  end
  if not cancelled then return 0 end
  for group, entry in pairs(undelivered) do
    redis.call('ZADD', KEYS[8], now_ms, entry)
    key_done(KEYS[2], group, f['fk'], entry)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now_ms - 86400000)
  redis.call('ZREMRANGEBYRANK', KEYS[8], 0, -1001)
  redis.call('HSET', key, 'bc', 1)
  settle_broadcast(stream, key, job, groups, kept, now)
else
  local entry, g = f['entry'], groups[1]
  if entry and (not g or older(g.last, entry)) then
    redis.call('XDEL', stream, entry)
    if g then key_done(KEYS[2], g.name, f['fk'], entry) end
  elseif entry and #redis.call('XPENDING', stream, g.name, entry, entry, 1) > 0 then
    stop_running(entry)
  end
  redis.call('HSET', key, 'state', 'cancelled', 'finished_at', now)
  retain(kept, key, job)
  tell_parent(stream, key, f['pa'], job, 'cancelled', '')
end
-- A broadcast job's waiters read their group's outcome themselves.
notify(key, channel, job, not (f['bc'] or #groups > 1) and 'cancelled' or nil)
trim_finished(kept, ARGV[5])
emit(KEYS[9], ARGV[6], 'cancelled', job, 0)
wake_relays(channel)
-- A flow's parent: its children are cancelled next (Queue.cancel), wherever they live.
return { 1, f['ch'] or '' }
