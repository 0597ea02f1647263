-- Claim entries whose consumer stopped heart-beating (idle past the visibility timeout).
-- KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, ARGV[4] most entries,
-- ARGV[5] XAUTOCLAIM cursor to start from
-- Returns {next cursor ('0-0' at the end), {{entry id, delivery count, {field, value, ...}}, ...}}.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local limit, cursor = tonumber(ARGV[4]), ARGV[5]
local claimed = {}
-- Bounded, so a huge PEL is swept over several calls instead of one long script.
for _ = 1, 20 do
  local r = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[3], cursor,
    'COUNT', limit - #claimed)
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    if type(e[2]) == 'table' then
      local p = redis.call('XPENDING', stream, group, e[1], e[1], 1)
      claimed[#claimed + 1] = { e[1], p[1][4], e[2] }
    else
      -- Redis 6.2 returns an entry deleted from the stream without fields: nothing to run.
      redis.call('XACK', stream, group, e[1])
    end
  end
  if cursor == '0-0' or #claimed >= limit then break end
end
return { cursor, claimed }
