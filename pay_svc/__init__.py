"""pay_svc: payments of orders, the gateway callbacks that settle them, refunds, and the audit.

* :mod:`pay_svc.payments` - the payment itself: values, the state machine, tables, queries, input
  validation, and the domain that applies them transactionally (create, callbacks, notify, refund).
* :mod:`pay_svc.gateway` - the external gateway's side: callback signatures and the simulated gateway.
* :mod:`pay_svc.adapters` - what the domain needs from outside (ports) and their gRPC clients.
* :mod:`pay_svc.api` - the ``meshpb.pay.v1.Pay`` servicer and the protobuf <-> domain conversions.
* :mod:`pay_svc.background` - the set of background loops (order notifier, nonce cleanup).
* :mod:`pay_svc.config` - typed settings; :mod:`pay_svc.runtime` - the wiring; ``__main__`` - the
  process entry point; ``migrations/`` - the Alembic versions of pay_svc's tables.
"""
