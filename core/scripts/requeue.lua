-- Move dead-lettered entries back into their partition's stream, attempts reset.
-- KEYS[1] -> partition dead-letter stream
-- KEYS[2] -> partition stream
-- ARGV[1..] -> dead-letter entry ids
-- Returns: per id, the new stream entry id, or false when no such dead entry exists.
local out = {}
for i, dead in ipairs(ARGV) do
  local got = redis.call('XRANGE', KEYS[1], dead, dead)
  if #got == 0 then
    out[i] = false
  else
    local f = got[1][2]
    local keep = {}
    for j = 1, #f, 2 do
      local name = f[j]
      if name ~= 'err' and name ~= 'src' and name ~= 'at' then
        keep[#keep + 1] = name
        if name == 'a' then keep[#keep + 1] = '0' else keep[#keep + 1] = f[j + 1] end
      end
    end
    out[i] = redis.call('XADD', KEYS[2], '*', unpack(keep))
    redis.call('XDEL', KEYS[1], dead)
  end
end
return out
