-- Drop every dead letter. KEYS[1] dead zset, KEYS[2] dead records. Returns how many.
local n = redis.call('ZCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return n
