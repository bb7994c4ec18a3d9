-- Enqueue a batch of tasks into one partition, atomically: fence, dedup, then XADD or ZADD.
-- KEYS[1] -> partition stream
-- KEYS[2] -> partition delayed zset (task id -> due ms)
-- KEYS[3] -> partition delayed data hash (task id -> msgpack of the entry's fields)
-- KEYS[4] -> partition epoch (int string)
-- KEYS[4+i] -> dedup key of task i (hp:{p}:dedup:<id>)
-- ARGV[1] -> caller's epoch (int); a write with an older epoch than KEYS[4] is refused
-- ARGV[2] -> dedup window in ms (> 0)
-- ARGV[3] -> now in ms (enqueue time, and the line between "due now" and "delayed")
-- ARGV[4..] -> per task, 9 values: due ms (0 = now), id, key, kind, payload,
--             scheduled ms (0 = none), max attempts, deadline ms (0 = none), durability
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
local now = tonumber(ARGV[3])
local out = {}
local n = (#ARGV - 3) / 9
for i = 0, n - 1 do
  local b = 4 + i * 9
  local dkey = KEYS[5 + i]
  local first = redis.call('GET', dkey)
  if first then
    out[#out + 1] = 2
    out[#out + 1] = first
  else
    local due = tonumber(ARGV[b])
    local fields = {'id', ARGV[b + 1], 'k', ARGV[b + 2], 'n', ARGV[b + 3], 'p', ARGV[b + 4],
      's', ARGV[b + 5], 'm', ARGV[b + 6], 'dl', ARGV[b + 7], 'u', ARGV[b + 8],
      'e', ARGV[3], 'a', '0', 'x', ARGV[1]}
    local ref
    if due > now then
      redis.call('ZADD', KEYS[2], due, ARGV[b + 1])
      redis.call('HSET', KEYS[3], ARGV[b + 1], cmsgpack.pack(fields))
      ref = 'delayed:' .. ARGV[b]
      out[#out + 1] = 1
    else
      ref = redis.call('XADD', KEYS[1], '*', unpack(fields))
      out[#out + 1] = 0
    end
    redis.call('SET', dkey, ref, 'PX', window)
    out[#out + 1] = ref
  end
end
return out
