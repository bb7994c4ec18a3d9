-- Move dead-lettered entries back into their partition's stream.
-- KEYS[1] -> partition dead-letter stream
-- KEYS[2] -> partition stream
-- ARGV[1..] -> pairs: dead-letter entry id, the task blob to enqueue (attempts reset)
-- Returns: per pair, the new stream entry id, or false when that dead entry is gone
--          (requeued or trimmed meanwhile; nothing is added for it).
local out = {}
for i = 1, #ARGV, 2 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    out[#out + 1] = redis.call('XADD', KEYS[2], '*', 't', ARGV[i + 1])
  else
    out[#out + 1] = false
  end
end
return out
