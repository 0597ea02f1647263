-- For wait_for. ARGV[1] '+' registers a waiter (while one is registered, the finishing script
-- publishes the job's finish), '=' only looks, '-' takes a waiter back (it stopped waiting;
-- the reply then tells nothing).
-- ARGV[2] the group whose outcome is awaited ('': the job's own, for a job of one group).
-- KEYS[1] job key, KEYS[2] stream
-- Returns nil for an unknown job; {'', group, ...} (the stream's groups) when the job is
-- awaited without a group while several read it, or for a group that does not read it;
-- {state, result, error} for a finished job (or group), else {state}.
local f = fields_of(KEYS[1])
if next(f) == nil then return nil end
if ARGV[1] == '-' then
  if tonumber(f['w'] or '0') > 0 then redis.call('HINCRBY', KEYS[1], 'w', -1) end
  return { f['state'] }
end
local group = ARGV[2]
local groups = groups_of(KEYS[2])
local state, result, err = f['state'], f['result'], f['error']
-- A job one group finished before others came to read the stream is that group's alone.
local broadcast = f['bc'] or (#groups > 1 and not TERMINAL[f['state']])
local mine
for _, g in ipairs(groups) do
  if g.name == group then mine = g end
end
local unknown_group = group ~= '' and #groups > 0 and not mine and not f['state ' .. group]
if (group == '' and broadcast) or unknown_group then
  local names = { '' }
  for _, g in ipairs(groups) do names[#names + 1] = g.name end
  return names
end
if group ~= '' and broadcast then
  state = (mine and group_state(KEYS[2], mine, f)) or f['state ' .. group] or f['state']
  result, err = f['result ' .. group], f['error ' .. group]
end
local finished = TERMINAL[state]
if ARGV[1] == '+' and not finished then redis.call('HINCRBY', KEYS[1], 'w', 1) end
if finished then return { state, result or false, err or false } end
return { state }
