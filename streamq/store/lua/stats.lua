-- Counts of a queue's jobs by state, and the memory the queue takes.
-- KEYS[1] stream, KEYS[2] retry zset, KEYS[3] dead zset, KEYS[4] completed counter,
-- KEYS[5] staged, KEYS[6] delayed, KEYS[7] finished, KEYS[8] paused, then the queue's other
-- keys;
-- ARGV[1] job key prefix
-- Returns {waiting, active, retrying, dead, completed, oldest waiting age ms, groups, delayed,
-- memory bytes, 1 if paused else 0, fairness keys with waiting work}.
local stream = KEYS[1]
local now_ms = server_time()
local groups = groups_of(stream)
local length = redis.call('XLEN', stream)
local waiting, active, oldest = 0, 0, nil
local function consider(first)
  if first[1] then
    local ms = tonumber(string.sub(first[1][1], 1, string.find(first[1][1], '-', 1, true) - 1))
    if not oldest or ms < oldest then oldest = ms end
  end
end
if #groups == 0 then
  waiting = length
  consider(redis.call('XRANGE', stream, '-', '+', 'COUNT', 1))
else
  for _, g in ipairs(groups) do
    active = active + g.pending
    local behind = behind_of(g, length)
    if behind > waiting then waiting = behind end
    if behind > 0 then consider(redis.call('XRANGE', stream, '(' .. g.last, '+', 'COUNT', 1)) end
  end
end
-- Staged jobs wait too. A staged set's oldest job is the first of its lowest priority level
-- (jobs starve there first) or its best job; their records hold their enqueue time.
local function consider_staged(set)
  local last = redis.call('ZRANGE', set, -1, -1, 'WITHSCORES')
  if not last[1] then return end
  local level = math.floor(tonumber(last[2]) / 4294967296) * 4294967296
  local candidates = { redis.call('ZRANGE', set, 0, 0)[1] }
  local lowest = redis.call('ZRANGEBYSCORE', set, level, '+inf', 'LIMIT', 0, 1)[1]
  if lowest ~= candidates[1] then candidates[2] = lowest end
  for _, job in ipairs(candidates) do
    local at = tonumber(redis.call('HGET', ARGV[1] .. job, 'enqueued_at') or '')
    if at and (not oldest or at * 1000 < oldest) then oldest = at * 1000 end
  end
end
local staged = redis.call('ZCARD', KEYS[5])
consider_staged(KEYS[5])
-- Jobs waiting in their fairness keys' sets (see stage in _lib.lua), and those keys: the ring's
-- (less the unkeyed set's turn) and those held back by per-key limits.
local ring, _, kprefix, keyed_count = fair_keys(KEYS[5])
local keyed = tonumber(redis.call('GET', keyed_count) or '0')
local held = { held_back_keys(KEYS[5]) }
local fair_keys_waiting = redis.call('ZCARD', ring)
if redis.call('ZSCORE', ring, FAIR_DEFAULT) then fair_keys_waiting = fair_keys_waiting - 1 end
for _, set in ipairs(held) do fair_keys_waiting = fair_keys_waiting + redis.call('ZCARD', set) end
-- Their oldest job, over at most OLDEST_KEYS keys (the ring's in turn order, then the held
-- back ones): stats runs on every metrics scrape, so it stays bounded; past that many keys the
-- age is a lower bound.
local OLDEST_KEYS = 1000
local looked = 0
for _, set in ipairs({ ring, held[1], held[2] }) do
  if looked >= OLDEST_KEYS then break end
  for _, fk in ipairs(redis.call('ZRANGE', set, 0, OLDEST_KEYS - looked - 1)) do
    if fk ~= FAIR_DEFAULT then
      consider_staged(kprefix .. fk)
      looked = looked + 1
    end
  end
end
local age = 0
if oldest then age = math.max(0, now_ms - oldest) end

-- Memory, approximately: the queue's keys (Redis samples the big ones), and its jobs' records
-- as the mean of a few of each kind times their number.
local memory = 0
for i = 1, #KEYS do memory = memory + (redis.call('MEMORY', 'USAGE', KEYS[i]) or 0) end
for _, set in ipairs(held) do memory = memory + (redis.call('MEMORY', 'USAGE', set) or 0) end
-- The fairness keys' own sets of staged jobs, by the bytes per job of a few of them (their sizes
-- vary: a set's own overhead is shared by its jobs); those jobs also sample the records.
local key_jobs, key_set_bytes, keyed_sample = 0, 0, {}
for _, set in ipairs({ ring, held[1], held[2] }) do
  for _, fk in ipairs(redis.call('ZRANGE', set, 0, 5)) do
    if fk ~= FAIR_DEFAULT and #keyed_sample < 5 then
      local used = redis.call('MEMORY', 'USAGE', kprefix .. fk)
      if used then
        key_jobs = key_jobs + redis.call('ZCARD', kprefix .. fk)
        key_set_bytes = key_set_bytes + used
        keyed_sample[#keyed_sample + 1] = redis.call('ZRANGE', kprefix .. fk, 0, 0)[1]
      end
    end
  end
end
if key_jobs > 0 then memory = memory + math.floor(key_set_bytes / key_jobs * keyed) end
local sample = keyed_sample
for _, job in ipairs(redis.call('LRANGE', KEYS[7], -5, -1)) do sample[#sample + 1] = job end
for _, job in ipairs(redis.call('ZRANGE', KEYS[5], 0, 4)) do sample[#sample + 1] = job end
for _, job in ipairs(redis.call('ZRANGE', KEYS[6], 0, 4)) do sample[#sample + 1] = job end
for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', 5)) do
  if entry[2][1] == 'j' then sample[#sample + 1] = entry[2][2] end
end
local sampled, bytes = 0, 0
for _, job in ipairs(sample) do
  local used = redis.call('MEMORY', 'USAGE', ARGV[1] .. job)
  if used then sampled, bytes = sampled + 1, bytes + used end
end
if sampled > 0 then
  local records = length + staged + keyed + redis.call('ZCARD', KEYS[2])
    + redis.call('ZCARD', KEYS[6])
    + redis.call('LLEN', KEYS[7])
  memory = memory + math.floor(bytes / sampled * records)
end
return {
  waiting + staged + keyed, active, redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
  tonumber(redis.call('GET', KEYS[4]) or '0'), age, #groups, redis.call('ZCARD', KEYS[6]),
  memory, redis.call('EXISTS', KEYS[8]), fair_keys_waiting,
}
