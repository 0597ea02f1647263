-- Undo a flow that was never committed. On the root's queue (ARGV[3] the root's id) the root
-- goes first, and only while uncommitted: that is the decision (a commit after it fails). Then
-- the flow's held steps named are deleted.
-- KEYS[1] the queue's stream (where the call goes), KEYS[2] flows being created
-- ARGV[1] job key prefix, ARGV[2] token, ARGV[3] root id or '', then the ids of the steps
-- Returns 1, or 0 when the flow is committed (it must be finished instead: nothing was done).
local prefix, token = ARGV[1], ARGV[2]
if ARGV[3] ~= '' then
  local key = prefix .. ARGV[3]
  local r = redis.call('HMGET', key, 'state', 'fl', 'cm')
  if r[1] == 'held' and r[2] == token then
    if r[3] then return 0 end
    redis.call('DEL', key)
  end
  redis.call('ZREM', KEYS[2], ARGV[3])
end
for i = 4, #ARGV do
  local key = prefix .. ARGV[i]
  local r = redis.call('HMGET', key, 'state', 'fl')
  if r[1] == 'held' and r[2] == token then redis.call('DEL', key) end
end
return 1
