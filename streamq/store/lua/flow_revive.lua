-- Put a flow parent that is in the dead letters (a child failed, or it did) or that was
-- cancelled back to waiting for its children: those that had not completed are to be replayed
-- by the caller (store/flows.py), each counted unfinished again. With none, it runs again.
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] staged seq, KEYS[4] delayed, KEYS[5] window,
-- KEYS[6] events, KEYS[7] dead zset, KEYS[8] dead records
-- ARGV[1] job key prefix, ARGV[2] job id, ARGV[3] events kept, ARGV[4] the queue's channel,
-- ARGV[5] the generation of its own parent it now runs for ('' for a root)
-- Returns false when the job is not such a parent, else {its new generation (the children
-- replayed run for it), queue, id, ...} of the children to replay.
local job = ARGV[2]
local key = ARGV[1] .. job
local r = redis.call('HMGET', key, 'state', 'ch', 'p')
local dead = r[1] == 'dead' and redis.call('ZSCORE', KEYS[7], job)
if not r[2] or not (dead or (r[1] == 'cancelled' and r[3])) then return false end
if dead then
  local payload = redis.call('HGET', KEYS[8], 'p:' .. job)
  redis.call('ZREM', KEYS[7], job)
  redis.call('HDEL', KEYS[8], 'r:' .. job, 'p:' .. job, 'g:' .. job)
  redis.call('HSET', key, 'p', payload)
end
redis.call('HDEL', key, 'error', 'finished_at', 'result', 'attempts')
redis.call('PERSIST', key)
if ARGV[5] ~= '' then redis.call('HSET', key, 'pg', ARGV[5]) end
local out, unfinished = { redis.call('HINCRBY', key, 'gen', 1) }, 0
for line in string.gmatch(r[2], '[^\n]+') do
  local tab = string.find(line, '\t', 1, true)
  local child = string.sub(line, tab + 1)
  local mark = redis.call('HGET', key, 'r:' .. child)
  if not mark or string.sub(mark, 1, 1) ~= 'c' then
    redis.call('HDEL', key, 'r:' .. child)
    unfinished = unfinished + 1
    out[#out + 1] = string.sub(line, 1, tab - 1)
    out[#out + 1] = child
  end
end
redis.call('HSET', key, 'state', 'waiting_children', 'wc', unfinished)
if unfinished == 0 then
  local room, delayed = make_ready(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], key, job, nil)
  if delayed then redis.call('PUBLISH', ARGV[4], 'due') end
  if room > 0 and anything_staged(KEYS[2]) then refill(KEYS[1], KEYS[2], ARGV[1], room) end
end
emit(KEYS[6], ARGV[3], 'enqueued', job, 0)
return out
