-- Finish some entries and begin others on one partition, as the lease holder, atomically.
-- Finishes run before begins, so a key's next task begins only after the previous is acked.
-- KEYS[1] -> partition stream
-- KEYS[2] -> partition lease hash (owner, token)
-- KEYS[3] -> partition started hash (task id -> "<entry id>|<times begun>")
-- KEYS[4] -> partition cancelled zset (task id -> cancel ms)
-- KEYS[5] -> partition dead-letter stream
-- KEYS[6] -> partition delayed zset
-- KEYS[7] -> partition delayed data hash (task id -> task blob)
-- ARGV[1] -> consumer group name
-- ARGV[2] -> caller's lease token; if it is not the lease's token, nothing is done
-- ARGV[3] -> consumer (worker id), stored as the starter of begun entries
-- ARGV[4] -> dead-letter stream approximate MAXLEN (0 = uncapped)
-- ARGV[5] -> msgpack array of finish records, each {op, entry id, task id[, a, b]}:
--     op "A": acknowledge
--     op "D": dead-letter with reason a after b attempts, then acknowledge
--     op "R": re-schedule at due ms a with task blob b (unordered retry), acknowledge
-- ARGV[6] -> msgpack array of begin records, each {entry id, task id}
-- Returns: {"FENCED", current token (0 when no lease)} if the caller lost the lease;
--          else one verdict per begin record: -1 = cancelled (acked; do not run), else
--          how many earlier deliveries of this entry began without finishing (0 = a
--          first run; more = a duplicate execution, and a suspect of killing workers).
local cur = redis.call('HGET', KEYS[2], 'token')
if cur ~= ARGV[2] then
  return {'FENCED', tonumber(cur or '0')}
end
local group = ARGV[1]
local deadcap = tonumber(ARGV[4])
local finishes = cmsgpack.unpack(ARGV[5])
local begins = cmsgpack.unpack(ARGV[6])

local function fields_of(entry)
  local got = redis.call('XRANGE', KEYS[1], entry, entry)
  if #got == 0 then return nil end
  return got[1][2]
end

for _, fin in ipairs(finishes) do
  local op, entry, tid = fin[1], fin[2], fin[3]
  if op == 'D' then
    local f = fields_of(entry)
    if f then
      f[#f + 1] = 'err'; f[#f + 1] = fin[4]
      f[#f + 1] = 'src'; f[#f + 1] = entry
      f[#f + 1] = 'at'; f[#f + 1] = tostring(fin[5])
      if deadcap > 0 then
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', deadcap, '*', unpack(f))
      else
        redis.call('XADD', KEYS[5], '*', unpack(f))
      end
    end
  elseif op == 'R' then
    redis.call('ZADD', KEYS[6], fin[4], tid)
    redis.call('HSET', KEYS[7], tid, fin[5])
  end
  redis.call('XACK', KEYS[1], group, entry)
  local mark = redis.call('HGET', KEYS[3], tid)
  if mark and string.sub(mark, 1, #entry + 1) == entry .. '|' then
    redis.call('HDEL', KEYS[3], tid)
  end
  redis.call('ZREM', KEYS[4], tid)
end

--#include begin
local out = {}
for _, beg in ipairs(begins) do
  out[#out + 1] = begin_entry(KEYS[1], KEYS[3], KEYS[4], group, beg[1], beg[2])
end
return out
