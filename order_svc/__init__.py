"""order_svc: orders, their state machine, placing, paying, cancelling, the pay deadline and the flash sale.

* :mod:`order_svc.orders` - the order itself: values, the state machine and its lifecycle, the tables,
  the queries, and the order's own branches in the mesh's transactions.
* :mod:`order_svc.placing` - PlaceOrder: its pure rules and plan, and the idempotent use case running the TCC.
* :mod:`order_svc.paying` - Pay (points TCC or external payment) and PaymentSucceeded.
* :mod:`order_svc.cancelling` - Cancel and the pay deadline's passive close: one MSG per cancel chain.
* :mod:`order_svc.flash` - the flash sale: rules, sales, Redis hot state, sold-out flags, queue and workers.
* :mod:`order_svc.service` - :class:`~order_svc.service.OrderService`, the one facade the servicer calls.
* :mod:`order_svc.adapters` - the ports the domain needs and their gRPC/NATS implementations
  (coordinator, stock_svc and pay_svc, the pay deadline timer).
* :mod:`order_svc.api` - the gRPC edge: the servicer and the protobuf conversions.
* :mod:`order_svc.migrations` - the ``order`` component's Alembic revisions.
* :mod:`order_svc.config`, :mod:`order_svc.runtime`, ``__main__`` - settings, process wiring, entry point.

Import direction: api -> service -> capabilities -> orders; adapters implement the ports; only api and
adapters import grpc or meshpb.
"""
