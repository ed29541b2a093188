"""The Redis hot path of stock, and keeping it true to the database.

* :mod:`~stock_svc.hot.redis_stock` - the hot copy: one hash per SKU, changed only by Lua scripts.
* :mod:`~stock_svc.hot.epoch` - the Redis epoch: telling "no try ran" from "Redis lost the try".
* :mod:`~stock_svc.hot.reconciler` - owed restock halves and drift between SQL and Redis, repaired.
"""
