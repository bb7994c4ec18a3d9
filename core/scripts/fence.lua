-- Raise a partition's epoch so writers with an older epoch are refused from now on.
-- KEYS[1] -> partition epoch (int string)
-- ARGV[1] -> new epoch
-- Returns: the partition's epoch after the call (never lower than before).
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(ARGV[1])
if new > cur then
  redis.call('SET', KEYS[1], new)
  return new
end
return cur
