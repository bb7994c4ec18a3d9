-- Cancel a task of one partition by id.
-- KEYS[1] -> partition cancelled zset (task id -> cancel ms); workers skip or signal these
-- KEYS[2] -> partition delayed zset
-- KEYS[3] -> partition delayed data hash
-- ARGV[1] -> task id
-- ARGV[2] -> now in ms
-- Returns: "removed" when it was still delayed (deleted; it never runs);
--          "marked" when it is now in the cancelled zset: the caller then reads the
--          started hash (`Broker.cancel`), outside the script, because a script's keys
--          need read and write rights and a gateway may only read that hash.
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[3], ARGV[1])
  return 'removed'
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 'marked'
