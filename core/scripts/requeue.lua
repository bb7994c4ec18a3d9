-- Move dead-lettered entries back into their partition's stream, attempts reset.
-- KEYS[1] -> partition dead-letter stream
-- KEYS[2] -> partition stream
-- ARGV[1..] -> dead-letter entry ids
-- Returns: per id, the new stream entry id, or false when no such dead entry exists.
local ATTEMPTS = 10  -- 1-based index of attempts_before in the task blob (core/entry.py)
local out = {}
for i, dead in ipairs(ARGV) do
  local got = redis.call('XRANGE', KEYS[1], dead, dead)
  local blob = nil
  if #got == 1 then
    local f = got[1][2]
    for j = 1, #f, 2 do
      if f[j] == 't' then blob = f[j + 1] end
    end
  end
  if blob then
    local t = cmsgpack.unpack(blob)
    t[ATTEMPTS] = 0
    out[i] = redis.call('XADD', KEYS[2], '*', 't', cmsgpack.pack(t))
    redis.call('XDEL', KEYS[1], dead)
  else
    out[i] = false
  end
end
return out
