"""stock_svc's gRPC face.

* :mod:`~stock_svc.api.servicer` - the ``meshpb.stock.v1.Stock`` servicer: messages -> domain -> messages.
* :mod:`~stock_svc.api.conversions` - messages <-> domain values, and a branch call's tx context.
"""
