-- Pause or resume a queue: while the key is set no consumer of any group starts a job. Every
-- consumer hears it on the queue's channel ('paused' / 'resumed') and reads the key again when
-- it starts, re-subscribes or renews its registration (register.lua), so a lost message only
-- delays it.
-- KEYS[1] the queue's paused key; ARGV[1] '1' to pause, '0' to resume, ARGV[2] the channel
-- Returns 1 if that changed the queue's state, else 0.
local changed
if ARGV[1] == '1' then
  changed = redis.call('SET', KEYS[1], 1, 'NX') and 1 or 0
  redis.call('PUBLISH', ARGV[2], 'paused')
else
  changed = redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'resumed')
end
return changed
