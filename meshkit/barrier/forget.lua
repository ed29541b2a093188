-- Redis barrier cleanup (meshkit.barrier.redis_cleanup): forget final gids.
-- KEYS[1] = mesh:barrier:index, KEYS[2..] = mesh:barrier:{gid} of each gid in ARGV (same order).
-- Deletes each gid's hash and index member; returns the number of hashes deleted.
local deleted = 0
for i, gid in ipairs(ARGV) do
  deleted = deleted + redis.call('DEL', KEYS[i + 1])
  redis.call('ZREM', KEYS[1], gid)
end
return deleted
