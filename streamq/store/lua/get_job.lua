-- A job's record, and whether a group is running it right now.
-- KEYS[1] stream, KEYS[2] job key
-- Returns nil for an unknown job, else {running (0/1), {field, value, ...}}.
local record = redis.call('HGETALL', KEYS[2])
if #record == 0 then return nil end
local state, entry
for i = 1, #record, 2 do
  if record[i] == 'state' then state = record[i + 1] end
  if record[i] == 'entry' then entry = record[i + 1] end
end
if state == 'waiting' and entry then
  for _, g in ipairs(groups_of(KEYS[1])) do
    if #redis.call('XPENDING', KEYS[1], g.name, entry, entry, 1) > 0 then
      return { 1, record }
    end
  end
end
return { 0, record }
