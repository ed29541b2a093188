"""The order itself, shared by every capability of order_svc.

* :mod:`~order_svc.orders.values` - the domain's values: items, orders, placing plans and requests,
  payment outcomes (plain dataclasses, no I/O).
* :mod:`~order_svc.orders.states` - the state machine as a table of allowed transitions (pure).
* :mod:`~order_svc.orders.lifecycle` - applying it: a checked compare-and-set transition with its history row.
* :mod:`~order_svc.orders.tables` - the order tables (orders, items, history, PlaceOrder requests).
* :mod:`~order_svc.orders.queries` - :class:`~order_svc.orders.queries.OrderRepo`, the queries of those
  tables.
* :mod:`~order_svc.orders.branches` - the order's branch operations in the mesh's transactions
  (TryCreate..., TryMarkPaid..., FinishRefund, QueryPrepared) as units of work through the runner barrier.
"""
