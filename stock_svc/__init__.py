"""stock_svc: SKUs and their stock, durable in SQL and hot in Redis, reserved by TCC branches.

* :mod:`stock_svc.stock` - the stock itself: tables, queries, input validation, and the domain that
  runs PutSku, reads, the audit and the Reserve/Release branches over both copies.
* :mod:`stock_svc.hot` - the Redis hot path: the hot copy and its Lua scripts, the Redis epoch (data
  loss detection), and the reconciler that repairs drift between SQL and Redis.
* :mod:`stock_svc.api` - the ``meshpb.stock.v1.Stock`` servicer and its message conversions.
* :mod:`stock_svc.config` - typed settings; :mod:`stock_svc.runtime` - the wiring; ``__main__`` - the
  process entry point; :mod:`stock_svc.migrations` - the Alembic versions of stock_svc's tables.
"""
