-- Subtransaction barrier for resources kept in Redis (meshkit.barrier.redis).
-- The barrier decision, the business body and the barrier entries happen in this one atomic script.
--
-- KEYS[1]  barrier hash         mesh:barrier:{gid}   field <branch>:<op>, value = reason
-- KEYS[2]  barrier index        mesh:barrier:index   sorted set, member gid, score = latest write (ms)
-- KEYS[3]  legacy own key       mesh:barrier:{gid}:<branch>:<op> (the pre-hash layout, adopted once)
-- KEYS[4]  legacy origin key    mesh:barrier:{gid}:<branch>:<try|action> (rollback ops; else = KEYS[3])
-- KEYS[5..] business keys       seen by the body as KEYS[1..]
-- ARGV[1]  op                   try|confirm|cancel|action|compensate|msg
-- ARGV[2]  origin op            try|action for cancel|compensate, '' otherwise
-- ARGV[3]  branch id
-- ARGV[4]  gid                  the index member
-- ARGV[5]  now (epoch ms)       the index score of the gid's latest entry
-- ARGV[6..] business args       seen by the body as ARGV[1..]
--
-- Entries have no TTL: RedisBarrierCleaner deletes a gid's hash (and its index member) only when it is
-- older than the retention period and the coordinator says the gid is final. The index holds the LATEST
-- write (ZADD GT), so a hash outlives every database row whose Redis half it records by the retention.
--
-- Returns {status[, value]}; status: applied (value = the body's return), duplicate, empty_rollback,
-- rejected (late try after an empty rollback), duplicate_msg, msg_rolled_back,
-- failed (value = the body's error message; nothing was written).
--
-- The body fails with `return redis.error_reply('why')` and must do so before it writes anything
-- (check everything first, then write). Barrier entries are written only after the body succeeded.

local function business(KEYS, ARGV)
-- @@BUSINESS_BODY@@
end

local barrier_key, index_key = KEYS[1], KEYS[2]
local op, origin_op, branch, gid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local own_field = branch .. ':' .. op
local origin_field = branch .. ':' .. origin_op

local function tail(list, from)
  local out = {}
  for i = from, #list do
    out[#out + 1] = list[i]
  end
  return out
end

local function mark(field, reason)
  redis.call('HSET', barrier_key, field, reason)
  redis.call('ZADD', index_key, 'GT', now, gid)
end

-- A key of the old one-key-per-entry layout (with a TTL) moves into the hash, without the TTL.
local function adopt(field, legacy_key)
  if redis.call('HEXISTS', barrier_key, field) == 0 then
    local reason = redis.call('GET', legacy_key)
    if reason then
      mark(field, reason)
    end
  end
  redis.call('DEL', legacy_key)
end

local function run_business()
  local result = business(tail(KEYS, 5), tail(ARGV, 6))
  if type(result) == 'table' and result.err ~= nil then
    return {'failed', result.err}
  end
  mark(own_field, op)
  return {'applied', result}
end

adopt(own_field, KEYS[3])

if origin_op ~= '' then
  adopt(origin_field, KEYS[4])
  if redis.call('HEXISTS', barrier_key, origin_field) == 0 then
    -- The origin never ran: empty rollback. Its entry (reason = this op) makes a late origin fail.
    mark(origin_field, op)
    mark(own_field, op)
    return {'empty_rollback'}
  end
  if redis.call('HEXISTS', barrier_key, own_field) == 1 then
    return {'duplicate'}
  end
  return run_business()
end

local reason = redis.call('HGET', barrier_key, own_field)
if reason then
  if op == 'msg' then
    if reason == 'rollback' then
      return {'msg_rolled_back'}
    end
    return {'duplicate_msg'}
  end
  if reason == 'cancel' or reason == 'compensate' then
    return {'rejected'}
  end
  return {'duplicate'}
end
return run_business()
