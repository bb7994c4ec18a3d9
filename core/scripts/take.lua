-- Read new entries of one partition and begin those that may start now, as the lease
-- holder, in one call (the worker's batch read; XREADGROUP without BLOCK).
-- An entry of a kind listed in ARGV[6] (the caller's unordered kinds) is begun as soon as
-- it is read. An entry of a kind listed in ARGV[7] (ordered kinds) is begun only if it is
-- the first entry of its key in this read and its key is not in ARGV[8] (the keys the
-- caller still has entries queued, running or not yet acked for): then nothing of its key
-- is ahead of it. At most ARGV[5] entries are begun (the handler slots the caller holds
-- for them); everything else is returned unbegun and begins later through step.lua, as
-- before. Begin is step.lua's (begin.lua).
-- KEYS[1] -> partition stream
-- KEYS[2] -> partition lease hash (owner, token)
-- KEYS[3] -> partition started hash (task id -> "<entry id>|<times begun>")
-- KEYS[4] -> partition cancelled zset (task id -> cancel ms)
-- ARGV[1] -> consumer group name
-- ARGV[2] -> caller's lease token; if it is not the lease's token, nothing is done
-- ARGV[3] -> consumer (worker id)
-- ARGV[4] -> most entries to read (COUNT)
-- ARGV[5] -> most entries to begin (0 = none)
-- ARGV[6] -> msgpack array of kinds begun whenever read (unordered)
-- ARGV[7] -> msgpack array of kinds begun as their key's first entry (ordered)
-- ARGV[8] -> msgpack array of keys whose ordered entries must not be begun here
-- Returns: {"FENCED", current token (0 when no lease)} if the caller lost the lease;
--          {"NOGROUP"} if the consumer group is missing (nothing read);
--          else per entry read, in stream order, {entry id, verdict, t, v}: t and v are
--          the entry's fields (false when absent); verdict -2 = not begun, -1 = cancelled
--          (acked; do not run), else how many earlier begins of it never finished.
local cur = redis.call('HGET', KEYS[2], 'token')
if cur ~= ARGV[2] then
  return {'FENCED', tonumber(cur or '0')}
end
local got = redis.pcall('XREADGROUP', 'GROUP', ARGV[1], ARGV[3], 'COUNT', ARGV[4],
                        'STREAMS', KEYS[1], '>')
if type(got) == 'table' and got.err then
  if string.find(got.err, 'NOGROUP', 1, true) then return {'NOGROUP'} end
  return redis.error_reply(got.err)
end
if not got then return {} end

local function set_of(packed)
  local out = {}
  for _, v in ipairs(cmsgpack.unpack(packed)) do out[v] = true end
  return out
end
local budget = tonumber(ARGV[5])
local free_kinds, ordered_kinds, held = set_of(ARGV[6]), set_of(ARGV[7]), set_of(ARGV[8])

-- The task blob is a msgpack array [id, key, kind, ...] (core/entry.py). Only its first
-- three strings are read here; anything else makes the entry "not begun" (the worker
-- decodes it and dead-letters it if it is no task blob).
local function str_at(s, pos)
  local b = string.byte(s, pos)
  if b >= 0xa0 and b <= 0xbf then return string.sub(s, pos + 1, pos + b - 0xa0), pos + 1 + b - 0xa0 end
  local len, head
  if b == 0xd9 then len, head = string.byte(s, pos + 1), 2
  elseif b == 0xda then len, head = string.byte(s, pos + 1) * 256 + string.byte(s, pos + 2), 3
  else error('no str') end
  return string.sub(s, pos + head, pos + head + len - 1), pos + head + len
end
local function id_key_kind(blob)
  if string.byte(blob, 1) ~= 0x9b then error('no task blob') end
  local tid, pos = str_at(blob, 2)
  local key, pos2 = str_at(blob, pos)
  local kind = str_at(blob, pos2)
  return tid, key, kind
end

--#include begin
local out = {}
local group, stream = ARGV[1], KEYS[1]
for _, e in ipairs(got[1][2]) do
  local entry, f = e[1], e[2]
  local t, v = false, false
  for i = 1, #f, 2 do
    if f[i] == 't' then t = f[i + 1] elseif f[i] == 'v' then v = f[i + 1] end
  end
  local verdict = -2
  if t and (not v or v == '1') then
    local ok, tid, key, kind = pcall(id_key_kind, t)
    if ok then
      local go = free_kinds[kind]
      if not go then
        -- Ordered, or a kind the caller has no handler for (it joins its key's queue too):
        -- whatever happens to this entry, its key's later entries wait behind it.
        go = ordered_kinds[kind] and not held[key]
        held[key] = true
      end
      if go and budget > 0 then
        budget = budget - 1
        verdict = begin_entry(stream, KEYS[3], KEYS[4], group, entry, tid)
      end
    end
  end
  out[#out + 1] = {entry, verdict, t, v}
end
return out
