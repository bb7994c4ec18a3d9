-- Acquire or renew a lease (a partition's consumer, or a region's manager).
-- KEYS[1] -> lease hash (owner, token), expires after the TTL unless renewed
-- KEYS[2] -> fence counter; INCR'd on every new grant, never expires, so tokens only grow
-- ARGV[1] -> candidate owner id
-- ARGV[2] -> TTL in ms
-- Returns: the fencing token (> 0) when the candidate holds the lease after the call;
--          0 when another owner holds it.
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then
  local token = redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return token
end
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('HGET', KEYS[1], 'token'))
end
return 0
