-- Write a flow's steps of one queue, held (see hold_step) until the flow is committed. A step
-- this flow wrote already (a producer that goes on after an error) is left as it is; an id that
-- an unfinished job of something else holds is a conflict, and that step is not written.
-- KEYS[1] the queue's stream (where the call goes)
-- ARGV[1] job key prefix, ARGV[2] token, ARGV[3] enqueued_at, then per step: id, payload,
-- priority, delay (ms), parent, policy, children, fairness key ('' for none)
-- Returns the ids in conflict.
local prefix, token, enqueued_at = ARGV[1], ARGV[2], ARGV[3]
local conflicts = {}
for i = 4, #ARGV, 8 do
  local job = ARGV[i]
  local key = prefix .. job
  local r = redis.call('HMGET', key, 'state', 'fl')
  if r[2] ~= token then
    if r[1] and UNFINISHED[r[1]] then
      conflicts[#conflicts + 1] = job
    else
      hold_step(key, job, token, enqueued_at, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
        ARGV[i + 5], ARGV[i + 6], ARGV[i + 7])
    end
  end
end
return conflicts
