"""pay_svc's reach outside itself.

* :mod:`~pay_svc.adapters.ports` - what the domain and the gateway need from outside, as protocols.
* :mod:`~pay_svc.adapters.grpc_clients` - their gRPC implementations: order_svc's PaymentSucceeded,
  and pay_svc's own Callback RPC.
"""
