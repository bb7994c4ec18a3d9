-- Move due delayed tasks of one partition into its stream (ZRANGEBYSCORE, XADD, ZREM).
-- KEYS[1] -> partition delayed zset (task id -> due ms)
-- KEYS[2] -> partition delayed data hash (task id -> task blob)
-- KEYS[3] -> partition stream
-- ARGV[1] -> now in ms
-- ARGV[2] -> most tasks to move in this call
-- Returns: {moved, due ms of the earliest task still delayed, or -1 when none}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, tid in ipairs(due) do
  local data = redis.call('HGET', KEYS[2], tid)
  if data then
    redis.call('XADD', KEYS[3], '*', 't', data)
    redis.call('HDEL', KEYS[2], tid)
  end
  redis.call('ZREM', KEYS[1], tid)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #nxt == 0 then return {#due, -1} end
return {#due, tonumber(nxt[2])}
