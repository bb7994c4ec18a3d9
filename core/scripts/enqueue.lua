-- Enqueue a batch of tasks into one partition, atomically: fence, dedup, then XADD or ZADD.
-- KEYS[1] -> partition stream
-- KEYS[2] -> partition delayed zset (task id -> due ms)
-- KEYS[3] -> partition delayed data hash (task id -> task blob)
-- KEYS[4] -> partition epoch (int string)
-- KEYS[4+i] -> dedup key of task i (hp:{p}:dedup:<id>)
-- ARGV[1] -> caller's epoch (int); a write with an older epoch than KEYS[4] is refused
-- ARGV[2] -> dedup window in ms (> 0)
-- ARGV[3] -> channel announcing delayed tasks (hp:{<region>}:due): when the call adds any,
--            it publishes "<KEYS[2]> <earliest due ms>" there, which wakes the
--            partition owner's forwarder (core/forwarder.py)
-- ARGV[4..] -> per task, 3 values: due ms (0 = ready now), task id, task blob (msgpack)
-- Returns: {"FENCED", current epoch} when the epoch is stale (nothing is written);
--          else a flat array, per task: status, ref
--            status 0 = added to the stream, ref = entry id
--            status 1 = added to the delayed set, ref = "delayed:<due ms>"
--            status 2 = duplicate inside the window, ref = the first submission's ref
local epoch = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[4]) or '0')
if epoch < current then
  return {'FENCED', current}
end
if epoch > current then
  redis.call('SET', KEYS[4], epoch)
end
local window = ARGV[2]
local out = {}
local earliest = nil
local n = (#ARGV - 3) / 3
for i = 0, n - 1 do
  local b = 4 + i * 3
  local dkey = KEYS[5 + i]
  local first = redis.call('GET', dkey)
  if first then
    out[#out + 1] = 2
    out[#out + 1] = first
  else
    local ref
    if ARGV[b] ~= '0' then
      redis.call('ZADD', KEYS[2], ARGV[b], ARGV[b + 1])
      redis.call('HSET', KEYS[3], ARGV[b + 1], ARGV[b + 2])
      ref = 'delayed:' .. ARGV[b]
      out[#out + 1] = 1
      local due = tonumber(ARGV[b])
      if earliest == nil or due < earliest then earliest = due end
    else
      ref = redis.call('XADD', KEYS[1], '*', 't', ARGV[b + 2])
      out[#out + 1] = 0
    end
    redis.call('SET', dkey, ref, 'PX', window)
    out[#out + 1] = ref
  end
end
if earliest ~= nil then
  redis.call('PUBLISH', ARGV[3], KEYS[2] .. ' ' .. string.format('%d', earliest))
end
return out
