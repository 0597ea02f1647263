-- Claim entries whose consumer stopped heart-beating (idle past the visibility timeout).
-- KEYS[1] stream, KEYS[2] events; ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms,
-- ARGV[4] most entries,
-- ARGV[5] XAUTOCLAIM cursor to start from, ARGV[6] idle ms after which a consumer that owes
-- nothing is removed from the group (the trace of a process that stopped or died), ARGV[7]
-- events kept (a "reclaimed" event per entry taken from a consumer that went silent)
-- Returns {next cursor ('0-0' at the end), {{entry id, delivery count, {field, value, ...},
-- 1 if a stopping consumer handed it back (release.lua) else 0}, ...}}.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local limit, cursor = tonumber(ARGV[4]), ARGV[5]
local claimed = {}
-- Bounded, so a huge PEL is swept over several calls instead of one long script.
for _ = 1, 20 do
  -- Which of the entries this claim may take were handed back: before the claim moves them.
  local handed_back = {}
  local from = cursor == '0-0' and '-' or cursor
  for _, p in ipairs(redis.call('XPENDING', stream, group, from, '+', limit - #claimed,
    HANDED_BACK)) do
    handed_back[p[1]] = 1
  end
  -- JUSTID, then XRANGE: Redis 6.2 answers a deleted entry with a bare null (no id) otherwise.
  -- JUSTID does not count the delivery, so the count is raised by hand below.
  local r = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[3], cursor,
    'COUNT', limit - #claimed, 'JUSTID')
  cursor = r[1]
  for _, id in ipairs(r[2]) do
    local entry = redis.call('XRANGE', stream, id, id)
    if #entry == 0 then
      redis.call('XACK', stream, group, id) -- deleted from the stream: nothing to run
    else
      local count = redis.call('XPENDING', stream, group, id, id, 1)[1][4] + 1
      redis.call('XCLAIM', stream, group, consumer, 0, id, 'RETRYCOUNT', count, 'JUSTID')
      claimed[#claimed + 1] = { id, count, entry[1][2], handed_back[id] or 0 }
      if not handed_back[id] then
        local f, job, attempt = entry[1][2], nil, 1
        for k = 1, #f, 2 do
          if f[k] == 'j' then job = f[k + 1] elseif f[k] == 'a' then attempt = f[k + 1] end
        end
        if job then emit(KEYS[2], ARGV[7], 'reclaimed', job, attempt, group, count) end
      end
    end
  end
  if cursor == '0-0' or #claimed >= limit then break end
end
if cursor == '0-0' then
  for _, flat in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
    local c = {}
    for i = 1, #flat, 2 do c[flat[i]] = flat[i + 1] end
    if c['pending'] == 0 and (c['idle'] > tonumber(ARGV[6]) or c['name'] == HANDED_BACK) then
      redis.call('XGROUP', 'DELCONSUMER', stream, group, c['name'])
    end
  end
end
return { cursor, claimed }
