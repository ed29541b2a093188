-- MSG check-back on the Redis barrier (meshkit.barrier.redis).
-- KEYS[1] = mesh:barrier:{gid}:00:msg, ARGV[1] = ttl (ms).
-- No key yet: the local transaction never ran; write reason 'rollback' so it never will.
-- Returns the key's reason: 'msg' (committed) or 'rollback'.
if redis.call('SET', KEYS[1], 'rollback', 'NX', 'PX', ARGV[1]) then
  return 'rollback'
end
return redis.call('GET', KEYS[1])
