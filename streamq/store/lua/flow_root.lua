-- Begin creating a flow (store/flows.py): write its root step, held, with the flow's spec ('fs'),
-- and add it to the flows being created, which the relays' sweep finishes or undoes when its
-- producer stopped. A root id that an unfinished job holds makes the flow a duplicate: nothing
-- is written.
-- KEYS[1] the root's record, KEYS[2] flows being created
-- ARGV[1] root id, ARGV[2] token, ARGV[3] spec, ARGV[4] enqueued_at, ARGV[5] payload,
-- ARGV[6] priority, ARGV[7] delay (ms), ARGV[8] policy, ARGV[9] children, ARGV[10] fairness key
-- Returns {1} when written, {0} for a duplicate, or {2, spec} when that flow is still being
-- created (the caller goes on with it: creating is idempotent).
local key, creating, job = KEYS[1], KEYS[2], ARGV[1]
local state = redis.call('HGET', key, 'state')
if state and UNFINISHED[state] then
  if redis.call('ZSCORE', creating, job) then
    return { 2, redis.call('HGET', key, 'fs') }
  end
  return { 0 }
end
hold_step(key, job, ARGV[2], ARGV[4], ARGV[5], ARGV[6], ARGV[7], '', ARGV[8], ARGV[9],
  ARGV[10])
redis.call('HSET', key, 'fs', ARGV[3])
redis.call('ZADD', creating, server_time(), job)
return { 1 }
