-- Keep the entries a live consumer holds from being reclaimed: reset their idle time. Also the
-- fallback for a lost cancel message (cancel.lua): it says which of them were cancelled.
-- KEYS[1] stream, KEYS[2] the group's slots; ARGV[1] group, ARGV[2] consumer, ARGV[3] job key
-- prefix, ARGV[4] how long a slot lasts (ms), then pairs of entry id, job id the consumer holds
-- The slots (global concurrency) of the entries it holds are renewed.
-- Only entries it still owns are touched (XCLAIM JUSTID does not count a delivery).
-- Returns {the entry ids it no longer owns, the entry ids whose job was cancelled}.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local claim, lost, cancelled = { 'XCLAIM', stream, group, consumer, 0 }, {}, {}
for i = 5, #ARGV, 2 do
  local entry = ARGV[i]
  if owns(stream, group, consumer, entry) then
    claim[#claim + 1] = entry
    local r = redis.call('HMGET', ARGV[3] .. ARGV[i + 1], 'state', 'bc', 'state ' .. group,
      'entry', 'entry ' .. group)
    if state_in_group(r[2], r[3], r[1]) == 'cancelled' and (r[5] or r[4]) == entry then
      cancelled[#cancelled + 1] = entry
    end
  else
    lost[#lost + 1] = entry
  end
end
if #claim > 5 and redis.call('EXISTS', KEYS[2]) == 1 then
  local lapse = server_time() + tonumber(ARGV[4])
  for i = 6, #claim do redis.call('ZADD', KEYS[2], 'XX', lapse, claim[i]) end
end
if #claim > 5 then
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
end
return { lost, cancelled }
