-- Shared helpers: scripts.py puts this file in front of every script.

-- The server's clock: milliseconds (for scores) and "seconds.micros" (for records).
local function server_time()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
    t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- XINFO GROUPS as a list of {name=, pending=, last=, lag=}; empty when the stream does not exist.
local function groups_of(stream)
  if redis.call('EXISTS', stream) == 0 then return {} end
  local groups = {}
  for _, flat in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local g = {}
    for i = 1, #flat, 2 do g[flat[i]] = flat[i + 1] end
    groups[#groups + 1] = {
      name = g['name'], pending = g['pending'], last = g['last-delivered-id'], lag = g['lag'],
    }
  end
  return groups
end

-- Whether `consumer` of `group` holds the pending entry `id`.
local function owns(stream, group, consumer, id)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  return p[1] ~= nil and p[1][2] == consumer
end

-- Acknowledge an entry, and delete it at once when its group is the stream's only reader
-- (with several groups the periodic trim removes what every group has acknowledged).
local function ack(stream, group, id, only_group)
  redis.call('XACK', stream, group, id)
  if only_group then redis.call('XDEL', stream, id) end
end

-- Wake every wait_for blocked on this job.
local function notify(job_key, done_key)
  local waiters = tonumber(redis.call('HGET', job_key, 'w') or '0')
  if waiters > 0 then
    for _ = 1, waiters do redis.call('RPUSH', done_key, '1') end
    redis.call('EXPIRE', done_key, 60)
    redis.call('HDEL', job_key, 'w')
  end
end

