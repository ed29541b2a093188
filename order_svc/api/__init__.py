"""The gRPC edge of order_svc: the only room (with the adapters) that knows protobuf.

* :mod:`~order_svc.api.servicer` - the ``meshpb.order.v1.Order`` servicer: convert, call the domain,
  convert back.
* :mod:`~order_svc.api.conversions` - protobuf messages <-> order domain values (also used by the
  coordinator adapter for branch payloads).
* :mod:`~order_svc.api.flash_conversions` - protobuf messages <-> flash sale values.
"""
