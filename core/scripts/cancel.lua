-- Cancel a task of one partition by id.
-- KEYS[1] -> partition cancelled zset (task id -> cancel ms); workers skip or signal these
-- KEYS[2] -> partition started hash (task id -> "<entry id>|<times begun>")
-- KEYS[3] -> partition delayed zset
-- KEYS[4] -> partition delayed data hash
-- ARGV[1] -> task id
-- ARGV[2] -> now in ms
-- Returns: "removed" when it was still delayed (deleted; it never runs);
--          "running" when a handler has started (it gets a cooperative cancel signal);
--          "pending" when it waits in the stream (the worker acks it without running it).
if redis.call('ZREM', KEYS[3], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[4], ARGV[1])
  return 'removed'
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 'running'
end
return 'pending'
