-- A job's record, whether a group is running it right now, and, while several groups read the
-- stream (or the record is a broadcast job's), where each group stands with it.
-- KEYS[1] stream, KEYS[2] job key
-- Returns nil for an unknown job, else {running (0/1), {field, value, ...}, {group, state, ...},
-- {the stream's groups}}.
local all = redis.call('HGETALL', KEYS[2])
if #all == 0 then return nil end
-- Not sent: a flow parent's children's results ('r:<id>', read by children_results), and what
-- a held step keeps until it runs.
local record, f = {}, {}
for i = 1, #all, 2 do
  local name = all[i]
  f[name] = all[i + 1]
  if string.sub(name, 1, 2) ~= 'r:' and name ~= 'fs' and name ~= 'p' then
    record[#record + 1] = name
    record[#record + 1] = all[i + 1]
  end
end
local groups = groups_of(KEYS[1])
local running, states = 0, {}
-- A job one group finished before others came to read the stream is that group's alone.
if f['bc'] or (#groups > 1 and not TERMINAL[f['state']]) then
  local seen = {}
  for _, g in ipairs(groups) do
    local s = group_state(KEYS[1], g, f)
    if s then
      states[#states + 1] = g.name
      states[#states + 1] = s
      seen[g.name] = true
      if s == 'active' then running = 1 end
    end
  end
  -- Groups that finished their part and have been removed since.
  for field, value in pairs(f) do
    local group = string.match(field, '^state (.+)$')
    if group and not seen[group] then
      states[#states + 1] = group
      states[#states + 1] = value
    end
  end
elseif f['state'] == 'waiting' and f['entry'] then
  local entry = f['entry']
  for _, g in ipairs(groups) do
    if #redis.call('XPENDING', KEYS[1], g.name, entry, entry, 1) > 0 then running = 1 end
  end
end
local names = {}
for _, g in ipairs(groups) do names[#names + 1] = g.name end
return { running, record, states, names }
