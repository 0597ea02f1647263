-- The jobs a queue holds in one state, for inspection: waiting, delayed and retrying ones in the
-- order they will run, active ones (delivered, unfinished) oldest first, completed ones (of the
-- finished records kept) newest first.
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] delayed, KEYS[4] retry zset, KEYS[5] retry payloads,
-- KEYS[6] finished
-- ARGV[1] job key prefix, ARGV[2] state: waiting, delayed, retrying, active or completed,
-- ARGV[3] most jobs, ARGV[4] a fairness key ('' for all): its waiting jobs only
-- Returns per job {id, payload, due ms (0: none), attempts, group, error, result, finished at,
-- enqueued at} ('' where unknown; a completed job's payload is not kept).
local stream, staged, delayed, retry, payloads = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, state, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}

local function attempts_and_error(job)
  local r = redis.call('HMGET', prefix .. job, 'attempts', 'error')
  return tonumber(r[1] or '0'), r[2] or ''
end

-- Staged jobs of `set` (their payloads wait in their records), up to the limit.
local function staged_from(set)
  if #out >= limit then return end
  for _, job in ipairs(redis.call('ZRANGE', set, 0, limit - #out - 1)) do
    out[#out + 1] = { job, redis.call('HGET', prefix .. job, 'p') or '', 0, 0, '', '' }
  end
end

local ring, _, kprefix = fair_keys(staged)
if state == 'waiting' and ARGV[4] ~= '' then
  staged_from(kprefix .. ARGV[4])
elseif state == 'waiting' then
  -- Stream entries not yet delivered to the group furthest behind (all, with no group yet).
  local start = '-'
  for _, g in ipairs(groups_of(stream)) do
    if start == '-' or older(g.last, string.sub(start, 2)) then start = '(' .. g.last end
  end
  for _, entry in ipairs(redis.call('XRANGE', stream, start, '+', 'COUNT', limit)) do
    local f = {}
    for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
    local job = f['j'] or ('entry-' .. entry[1])
    local attempts, err = attempts_and_error(job)
    out[#out + 1] = { job, f['p'] or '', 0, attempts, f['g'] or '', err }
  end
  -- Then the staged backlog, best first, and the fairness keys': the ring's in turn order, then
  -- those held back by per-key limits (parked, then full). Every key listed has a job, so the
  -- first `limit` of each are enough.
  staged_from(staged)
  local parked, full = held_back_keys(staged)
  for _, set in ipairs({ ring, parked, full }) do
    if #out >= limit then break end
    for _, fk in ipairs(redis.call('ZRANGE', set, 0, limit - 1)) do
      if fk ~= FAIR_DEFAULT then staged_from(kprefix .. fk) end
    end
  end
elseif state == 'active' then
  for _, g in ipairs(groups_of(stream)) do
    if #out >= limit then break end
    for _, p in ipairs(redis.call('XPENDING', stream, g.name, '-', '+', limit - #out)) do
      local entry = redis.call('XRANGE', stream, p[1], p[1])[1]
      if entry then
        local f = {}
        for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
        local job = f['j'] or ('entry-' .. p[1])
        local attempts = attempts_and_error(job)
        out[#out + 1] = { job, f['p'] or '', 0, attempts + 1, g.name, '' }
      end
    end
  end
elseif state == 'completed' then
  local ids = redis.call('LRANGE', KEYS[6], -limit, -1)
  for i = #ids, 1, -1 do
    local r = redis.call('HMGET', prefix .. ids[i], 'state', 'attempts', 'result', 'finished_at',
      'enqueued_at')
    if r[1] == 'completed' then
      out[#out + 1] = { ids[i], '', 0, tonumber(r[2] or '0'), '', '', r[3] or '', r[4] or '',
        r[5] or '' }
    end
  end
elseif state == 'delayed' then
  local due = redis.call('ZRANGE', delayed, 0, limit - 1, 'WITHSCORES')
  for i = 1, #due, 2 do
    local job = due[i]
    out[#out + 1] = { job, redis.call('HGET', prefix .. job, 'p') or '', tonumber(due[i + 1]), 0, '', '' }
  end
else
  -- Members are group<TAB>job; their payloads wait as attempt<TAB>payload.
  local due = redis.call('ZRANGE', retry, 0, limit - 1, 'WITHSCORES')
  for i = 1, #due, 2 do
    local member = due[i]
    local tab = string.find(member, '\t', 1, true)
    local group, job = string.sub(member, 1, tab - 1), string.sub(member, tab + 1)
    local value = redis.call('HGET', payloads, member) or '\t'
    local attempts, err = attempts_and_error(job)
    local payload = string.sub(value, string.find(value, '\t', 1, true) + 1)
    out[#out + 1] = { job, payload, tonumber(due[i + 1]), attempts, group, err }
  end
end
return out
