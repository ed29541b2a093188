"""The flash sale: PutFlashSale, GetFlashSale, FlashBuy, GetFlashResult (DESIGN.md section 6).

* :mod:`~order_svc.flash.service` - :class:`~order_svc.flash.service.FlashService`, the four RPCs'
  domain side.
* :mod:`~order_svc.flash.rules` - the pure rules: sales, buy requests, tickets, validation, the window.
* :mod:`~order_svc.flash.sales` - sales by id (cached per node) and the Redis copies of their quotas.
* :mod:`~order_svc.flash.hot` - the hot state in Redis: quota, per-user units, tickets, rate counters (Lua).
* :mod:`~order_svc.flash.flags` - the node-local sold-out flags.
* :mod:`~order_svc.flash.queue` - the JetStream work queue and the restock broadcast.
* :mod:`~order_svc.flash.jobs` - the workers: one job per ticket places its order, failures give units back.
* :mod:`~order_svc.flash.tables` - the flash tables (sales, tickets).
* :mod:`~order_svc.flash.queries` - :class:`~order_svc.flash.queries.FlashRepo`, the queries of those tables.
"""
