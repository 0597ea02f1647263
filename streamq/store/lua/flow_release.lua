-- Release a committed flow's steps of one queue: a step with children unfinished waits for them
-- ('waiting_children'); the others go where a new job goes. On the root's queue (ARGV[5] the
-- root's id) the root goes last, and the flow leaves the flows being created. A step that is no
-- longer held (released already, finished since) is left as it is.
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] staged seq, KEYS[4] delayed, KEYS[5] window,
-- KEYS[6] events, KEYS[7] flows being created
-- ARGV[1] job key prefix, ARGV[2] the queue's channel, ARGV[3] events kept, ARGV[4] token,
-- ARGV[5] root id or '', then the ids of the steps
-- Returns how many steps were released.
local prefix, token = ARGV[1], ARGV[4]
local room, wake, released = nil, false, 0
local function release(job)
  local key = prefix .. job
  local r = redis.call('HMGET', key, 'state', 'fl', 'wc')
  if r[1] ~= 'held' or r[2] ~= token then return end
  if tonumber(r[3] or '0') > 0 then
    redis.call('HSET', key, 'state', 'waiting_children')
  else
    local delayed
    room, delayed = make_ready(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], key, job, room)
    wake = wake or delayed
  end
  emit(KEYS[6], ARGV[3], 'enqueued', job, 0)
  released = released + 1
end
for i = 6, #ARGV do release(ARGV[i]) end
if ARGV[5] ~= '' then
  release(ARGV[5])
  redis.call('HDEL', prefix .. ARGV[5], 'fs', 'cm')
  redis.call('ZREM', KEYS[7], ARGV[5])
end
if room and room > 0 and anything_staged(KEYS[2]) then
  refill(KEYS[1], KEYS[2], prefix, room)
end
if wake then redis.call('PUBLISH', ARGV[2], 'due') end
return released
