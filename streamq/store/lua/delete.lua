-- Delete a queue, one batch at a time: the records of up to ARGV[2] of its jobs per call (found
-- through the stream and the staged (also per fairness key), delayed, retry, dead and finished
-- sets), then, once none
-- is left, every key of its own. While a consumer registered in the window is live it refuses,
-- unless ARGV[3] is '1' (forced).
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] delayed, KEYS[4] retry, KEYS[5] dead, KEYS[6] finished,
-- KEYS[7] window, KEYS[8] groups, then the queue's other keys (deleted at the end)
-- ARGV[1] job key prefix, ARGV[2] batch, ARGV[3] force, ARGV[4] rate key prefix,
-- ARGV[5] rate counter key prefix, ARGV[6] slots key prefix, ARGV[7] the history key prefix,
-- ARGV[8] the seconds of history kept (its per-minute hashes are named by the minute)
-- Returns {-1, live consumer, ...} when refused, else {records deleted, 1 once all is gone}.
local prefix, batch = ARGV[1], tonumber(ARGV[2])
local now_ms = server_time()
if ARGV[3] ~= '1' then
  local live = { -1 }
  local fields = redis.call('HGETALL', KEYS[7])
  for i = 1, #fields, 2 do
    local expiry = string.match(fields[i + 1], '^%d+:(%d+)$')
    if fields[i] ~= 'total' and expiry and tonumber(expiry) > now_ms then
      live[#live + 1] = fields[i]
    end
  end
  if #live > 1 then return live end
end

local deleted = 0
local function drop(job)
  deleted = deleted + redis.call('UNLINK', prefix .. job)
  redis.call('UNLINK', logs_key(prefix .. job, job))
end
for _, set in ipairs({ KEYS[2], KEYS[3], KEYS[5] }) do
  local popped = redis.call('ZPOPMIN', set, batch)
  for i = 1, #popped, 2 do drop(popped[i]) end
  if #popped > 0 then return { deleted, 0 } end
end
-- The fairness keys' staged jobs, a key at a time, whether it takes turns or is held back (the
-- sets of keys go with the queue's keys).
local ring, _, kprefix = fair_keys(KEYS[2])
local parked, full = held_back_keys(KEYS[2])
for _, set in ipairs({ ring, parked, full }) do
  for _, fk in ipairs(redis.call('ZRANGE', set, 0, 0)) do
    if fk ~= FAIR_DEFAULT then
      local popped = redis.call('ZPOPMIN', kprefix .. fk, batch)
      for i = 1, #popped, 2 do drop(popped[i]) end
      if #popped > 0 then return { deleted, 0 } end
    end
    redis.call('ZREM', set, fk)
    return { deleted, 0 }
  end
end
local finished = redis.call('LPOP', KEYS[6], batch)
if finished then
  for _, job in ipairs(finished) do drop(job) end
  return { deleted, 0 }
end
local retries = redis.call('ZPOPMIN', KEYS[4], batch)
for i = 1, #retries, 2 do
  drop(string.sub(retries[i], string.find(retries[i], '\t', 1, true) + 1))
end
if #retries > 0 then return { deleted, 0 } end
local entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', batch)
for _, entry in ipairs(entries) do
  local f = entry[2]
  for i = 1, #f, 2 do
    if f[i] == 'j' then drop(f[i + 1]) end
  end
  redis.call('XDEL', KEYS[1], entry[1])
end
if #entries > 0 then return { deleted, 0 } end

-- No job is left: the groups' rate limits and per-key counts, then the queue's own keys (the
-- per-key rate logs expire on their own within their period).
local groups = {}
for _, g in ipairs(groups_of(KEYS[1])) do groups[g.name] = true end
for _, group in ipairs(redis.call('HKEYS', KEYS[8])) do groups[group] = true end
local _, _, active = limit_keys(KEYS[2])
for group in pairs(groups) do
  redis.call('UNLINK', ARGV[4] .. group, ARGV[5] .. group, ARGV[6] .. group, active .. group)
end
-- Every minute a history hash may still be kept for (they expire after ARGV[8] seconds).
local minute = math.floor(now_ms / 60000) * 60
local history = {}
for m = minute - tonumber(ARGV[8]) - 60, minute + 60, 60 do
  history[#history + 1] = ARGV[7] .. string.format('%d', m)
end
redis.call('UNLINK', unpack(history))
redis.call('UNLINK', unpack(KEYS))
return { deleted, 1 }
