-- The consumer groups reading a queue and their consumers, for inspection.
-- KEYS[1] stream
-- Returns per group {name, pending, lag (-1: unknown before Redis 7), last delivered id,
-- {consumer name, pending, idle ms, ...}}.
local stream = KEYS[1]
local out = {}
for _, g in ipairs(groups_of(stream)) do
  local consumers = {}
  for _, flat in ipairs(redis.call('XINFO', 'CONSUMERS', stream, g.name)) do
    local c = {}
    for i = 1, #flat, 2 do c[flat[i]] = flat[i + 1] end
    consumers[#consumers + 1] = c['name']
    consumers[#consumers + 1] = c['pending']
    consumers[#consumers + 1] = c['idle']
  end
  local lag = g.lag
  if type(lag) ~= 'number' then lag = -1 end
  out[#out + 1] = { g.name, g.pending, lag, g.last, consumers }
end
return out
