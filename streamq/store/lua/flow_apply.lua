-- Apply children's finishes (items of their queues' outboxes) to their parents in this queue,
-- each once: a parent keeps what each child ended with ('r:<child id>'), and a child found
-- there already is skipped, so an item applied twice changes nothing. The last child releases
-- its parent (make_ready); a failed or cancelled child fails its parent (on_child_failure
-- 'fail': to the dead letters, naming the child) or is left out ('ignore'). A parent that is no
-- longer waiting (failed, cancelled) ignores what comes after.
-- KEYS[1] stream, KEYS[2] staged, KEYS[3] staged seq, KEYS[4] delayed, KEYS[5] window,
-- KEYS[6] events, KEYS[7] dead zset, KEYS[8] dead records, KEYS[9] finished
-- ARGV[1] job key prefix, ARGV[2] the queue's channel, ARGV[3] events kept, ARGV[4] result ttl
-- (s), ARGV[5] finished records to keep, ARGV[6] the queue's name; then per item: parent id,
-- child queue, child id, child state, detail (the result, or the error), the parent's
-- generation the child ran for (see tell_parent)
-- Returns the children of the parents that failed, still to be cancelled: {queue, id, ...}.
local prefix = ARGV[1]
local kept = retention(KEYS[9], ARGV[4], ARGV[5])
local room, wake, to_cancel = nil, false, {}
local WAITING = { held = true, waiting_children = true }

local function fail_parent(key, parent, reason)
  local now_ms, now = server_time()
  local r = redis.call('HMGET', key, 'p', 'pa', 'ch')
  redis.call('HSET', key, 'state', 'dead', 'attempts', 0, 'error', reason, 'finished_at', now)
  redis.call('HDEL', key, 'p')
  redis.call('ZADD', KEYS[7], math.floor(now_ms / 1000), parent)
  redis.call('HSET', KEYS[8], 'r:' .. parent, cmsgpack.pack({ parent, reason, 0, tonumber(now), '' }),
    'p:' .. parent, r[1] or '', 'g:' .. parent, ARGV[6])
  retain(kept, key, parent)
  notify(key, ARGV[2], parent, 'dead', reason)
  emit(KEYS[6], ARGV[3], 'dead', parent, 0, nil, reason)
  tell_parent(KEYS[1], key, r[2], parent, 'dead', reason)
  for line in string.gmatch(r[3] or '', '[^\n]+') do
    local tab = string.find(line, '\t', 1, true)
    local child = string.sub(line, tab + 1)
    if redis.call('HEXISTS', key, 'r:' .. child) == 0 then
      to_cancel[#to_cancel + 1] = string.sub(line, 1, tab - 1)
      to_cancel[#to_cancel + 1] = child
    end
  end
end

for i = 7, #ARGV, 6 do
  local parent, queue, child, state, detail = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    ARGV[i + 4]
  local key = prefix .. parent
  local f = redis.call('HMGET', key, 'state', 'ocf', 'gen')
  if WAITING[f[1]] and tonumber(f[3] or '0') == tonumber(ARGV[i + 5]) then
    local ok = state == 'completed'
    local mark = ok and ('c' .. detail) or ('x' .. detail)
    if redis.call('HSETNX', key, 'r:' .. child, mark) == 1 then
      if ok or f[2] == 'ignore' then
        local left = redis.call('HINCRBY', key, 'wc', -1)
        if left <= 0 and f[1] == 'waiting_children' then
          local delayed
          room, delayed = make_ready(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], key, parent,
            room)
          wake = wake or delayed
        end
      else
        local what = state == 'dead' and 'failed' or state
        local reason = 'child ' .. child .. ' (queue ' .. queue .. ') ' .. what
        if detail ~= '' then reason = reason .. ': ' .. detail end
        fail_parent(key, parent, reason)
      end
    end
  end
end
trim_finished(kept, prefix)
if room and room > 0 and anything_staged(KEYS[2]) then
  refill(KEYS[1], KEYS[2], prefix, room)
end
if wake then redis.call('PUBLISH', ARGV[2], 'due') end
wake_relays(ARGV[2])
return to_cancel
