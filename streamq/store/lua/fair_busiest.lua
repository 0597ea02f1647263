-- The fairness keys with the most waiting jobs, one chunk of keys per call: with many keys a
-- walk over all of them would hold the server, so the caller walks with a cursor and merges
-- (store/fair_info.py). The keys with waiting work are the ring's (less the unkeyed set's
-- turn, FAIR_DEFAULT) and those held back by per-key limits, walked in that order by rank.
-- KEYS[1] staged
-- ARGV[1] cursor: the set being walked (0 the ring, 1 parked, 2 full), ARGV[2] cursor: the
-- rank in it to go on from, ARGV[3] most keys this call looks at, ARGV[4] how many to return
-- Returns {next set (3: done), next rank, then key, waiting jobs per key}: this call's busiest,
-- most jobs first (then by key).
local ring, _, kprefix = fair_keys(KEYS[1])
local parked, full = held_back_keys(KEYS[1])
local sets = { ring, parked, full }
local at, rank = tonumber(ARGV[1]), tonumber(ARGV[2])
local budget, most = tonumber(ARGV[3]), tonumber(ARGV[4])

-- This call's busiest keys, kept sorted: `most` is small, so insertion is cheap.
local top = {}
local function offer(fk, count)
  local n = #top
  if n >= most then
    local last = top[n]
    if count < last[2] or (count == last[2] and fk > last[1]) then return end
    top[n] = nil
    n = n - 1
  end
  local i = n + 1
  while i > 1 and (top[i - 1][2] < count or (top[i - 1][2] == count and top[i - 1][1] > fk)) do
    top[i] = top[i - 1]
    i = i - 1
  end
  top[i] = { fk, count }
end

while at < #sets and budget > 0 do
  local members = redis.call('ZRANGE', sets[at + 1], rank, rank + budget - 1)
  for _, fk in ipairs(members) do
    if fk ~= FAIR_DEFAULT then offer(fk, redis.call('ZCARD', kprefix .. fk)) end
  end
  budget = budget - #members
  if budget > 0 then  -- this set is done
    at, rank = at + 1, 0
  else
    rank = rank + #members
  end
end

local out = { at, rank }
for _, entry in ipairs(top) do
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[2]
end
return out
