-- The entries this consumer owns, with their delivery counts and fields: after an error the
-- consumer takes up those whose delivery reply it never saw.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] most entries
-- Returns {{entry id, delivery count, {field, value, ...}}, ...}.
local stream, group = KEYS[1], ARGV[1]
local owned = {}
for _, p in ipairs(redis.call('XPENDING', stream, group, '-', '+', tonumber(ARGV[3]), ARGV[2])) do
  local entry = redis.call('XRANGE', stream, p[1], p[1])
  if #entry == 0 then
    redis.call('XACK', stream, group, p[1]) -- deleted from the stream: nothing to run
  else
    owned[#owned + 1] = { p[1], p[4], entry[1][2] }
  end
end
return owned
