"""PlaceOrder: one order per merchant, placed by one TCC (stock, points, order).

* :mod:`~order_svc.placing.rules` - the pure rules: input validation, catalogue check, split by merchant,
  points split, the gid and the request fingerprint, and the TCC's plan (no I/O).
* :mod:`~order_svc.placing.place_order` - the use case: the request record (idempotency on
  ``request_id``), running the placing TCC, and the sweep of requests left unsettled.
* :mod:`~order_svc.placing.known_skus` - the catalogue as PlaceOrder reads it: prices always fresh, a
  SKU's existence and merchant cached (both never change).
"""
