"""What the order domain needs from the outside, and its gRPC/NATS implementations.

* :mod:`~order_svc.adapters.ports` - the small protocols the domain is written against (catalogue, payments,
  mesh, deadline timer, flash queue) and the values they carry.
* :mod:`~order_svc.adapters.coordinator` - :class:`~order_svc.adapters.coordinator.GrpcMesh`, the order's
  global transactions on the coordinator (placing TCC, points-pay TCC, cancel MSG, queries).
* :mod:`~order_svc.adapters.peers` - gRPC clients of stock_svc's catalogue and pay_svc's external payments.
* :mod:`~order_svc.adapters.deadline_timer` - the pay deadline as a JetStream scheduled message.

The flash queue's implementation lives with the flash sale (:mod:`order_svc.flash.queue`).
"""
