-- Subtransaction barrier for resources kept in Redis (meshkit.barrier.redis).
-- The barrier decision, the business body and the barrier keys happen in this one atomic script.
--
-- KEYS[1]  own barrier key      mesh:barrier:{gid}:<branch>:<op>
-- KEYS[2]  origin barrier key   mesh:barrier:{gid}:<branch>:<try|action> (rollback ops; else = KEYS[1])
-- KEYS[3..] business keys       seen by the body as KEYS[1..]
-- ARGV[1]  op                   try|confirm|cancel|action|compensate|msg
-- ARGV[2]  origin op            try|action for cancel|compensate, '' otherwise
-- ARGV[3]  barrier ttl (ms)     the retention period
-- ARGV[4..] business args       seen by the body as ARGV[1..]
--
-- Returns {status[, value]}; status: applied (value = the body's return), duplicate, empty_rollback,
-- rejected (late try after an empty rollback), duplicate_msg, msg_rolled_back,
-- failed (value = the body's error message; nothing was written).
--
-- The body fails with `return redis.error_reply('why')` and must do so before it writes anything
-- (check everything first, then write). Barrier keys are written only after the body succeeded.

local function business(KEYS, ARGV)
-- @@BUSINESS_BODY@@
end

local own_key, origin_key = KEYS[1], KEYS[2]
local op, origin_op, ttl = ARGV[1], ARGV[2], ARGV[3]

local function tail(list, from)
  local out = {}
  for i = from, #list do
    out[#out + 1] = list[i]
  end
  return out
end

local function run_business()
  local result = business(tail(KEYS, 3), tail(ARGV, 4))
  if type(result) == 'table' and result.err ~= nil then
    return {'failed', result.err}
  end
  redis.call('SET', own_key, op, 'PX', ttl)
  return {'applied', result}
end

if origin_op ~= '' then
  if redis.call('EXISTS', origin_key) == 0 then
    -- The origin never ran: empty rollback. Its key (reason = this op) makes a late origin fail.
    redis.call('SET', origin_key, op, 'PX', ttl)
    redis.call('SET', own_key, op, 'PX', ttl)
    return {'empty_rollback'}
  end
  if redis.call('EXISTS', own_key) == 1 then
    return {'duplicate'}
  end
  return run_business()
end

local reason = redis.call('GET', own_key)
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
