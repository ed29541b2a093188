-- MSG check-back on the Redis barrier (meshkit.barrier.redis).
-- KEYS[1] = mesh:barrier:{gid} (hash), KEYS[2] = mesh:barrier:index, KEYS[3] = legacy key
-- mesh:barrier:{gid}:00:msg; ARGV[1] = field '00:msg', ARGV[2] = gid, ARGV[3] = now (epoch ms).
-- No entry yet: the local transaction never ran; write reason 'rollback' so it never will.
-- Returns the entry's reason: 'msg' (committed) or 'rollback'.
local legacy = redis.call('GET', KEYS[3])
if legacy then
  redis.call('HSETNX', KEYS[1], ARGV[1], legacy)
  redis.call('ZADD', KEYS[2], 'GT', ARGV[3], ARGV[2])
  redis.call('DEL', KEYS[3])
end
if redis.call('HSETNX', KEYS[1], ARGV[1], 'rollback') == 1 then
  redis.call('ZADD', KEYS[2], 'GT', ARGV[3], ARGV[2])
  return 'rollback'
end
return redis.call('HGET', KEYS[1], ARGV[1])
