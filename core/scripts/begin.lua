-- Shared by step.lua and take.lua (pasted in where they say `--#include begin`, by
-- core/nodes.py): begin one entry as its partition's lease holder.
-- begin_entry(stream, started, cancelled, group, entry, tid) -> -1 when the task was
-- cancelled (the entry is acked; do not run it), else how many earlier begins of the
-- entry never finished (0 = a first run); notes the start as "<entry id>|<times begun>".
local function begin_entry(stream, started, cancelled, group, entry, tid)
  if redis.call('ZSCORE', cancelled, tid) then
    redis.call('XACK', stream, group, entry)
    redis.call('ZREM', cancelled, tid)
    return -1
  end
  local mark = redis.call('HGET', started, tid)
  local before = 0
  if mark and string.sub(mark, 1, #entry + 1) == entry .. '|' then
    before = tonumber(string.sub(mark, #entry + 2))
  end
  redis.call('HSET', started, tid, entry .. '|' .. (before + 1))
  return before
end
