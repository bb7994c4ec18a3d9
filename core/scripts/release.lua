-- Give up a lease if the caller still holds it.
-- KEYS[1] -> lease hash (owner, token)
-- ARGV[1] -> owner id
-- Returns: 1 when released, 0 when the caller did not hold it.
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
