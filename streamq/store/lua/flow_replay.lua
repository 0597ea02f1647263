-- Replay one child of a flow parent that retry_dead put back to waiting (flow_revive.lua): a
-- cancelled step runs again from the payload it kept. Says what else the caller does.
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] staged seq, KEYS[4] delayed, KEYS[5] window,
-- KEYS[6] events, KEYS[7] dead zset
-- ARGV[1] job key prefix, ARGV[2] job id, ARGV[3] the queue's channel, ARGV[4] events kept,
-- ARGV[5] the generation of its parent it now runs for (see tell_parent)
-- Returns {'replayed'}; {'dead'} (in the dead letters: replay it as such); {'completed',
-- result} (it completed after its parent failed, which ignored it: tell the parent again);
-- {'unfinished'} (it tells its parent when it finishes); {'gone'} (no record, or no payload).
local job = ARGV[2]
local key = ARGV[1] .. job
local r = redis.call('HMGET', key, 'state', 'p', 'result')
if not r[1] then return { 'gone' } end
redis.call('HSET', key, 'pg', ARGV[5])
if redis.call('ZSCORE', KEYS[7], job) then return { 'dead' } end
if r[1] == 'completed' then return { 'completed', r[3] or '' } end
if r[1] ~= 'cancelled' then
  if TERMINAL[r[1]] then return { 'gone' } end
  return { 'unfinished' }
end
if not r[2] then return { 'gone' } end
redis.call('HDEL', key, 'finished_at', 'error')
redis.call('PERSIST', key)
local room, delayed = make_ready(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], key, job, nil)
if delayed then redis.call('PUBLISH', ARGV[3], 'due') end
if room > 0 and anything_staged(KEYS[2]) then refill(KEYS[1], KEYS[2], ARGV[1], room) end
emit(KEYS[6], ARGV[4], 'enqueued', job, 0)
return { 'replayed' }
