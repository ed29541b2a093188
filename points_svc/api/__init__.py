"""points_svc's gRPC face.

* :mod:`~points_svc.api.servicer` - the ``meshpb.points.v1.Points`` servicer: message -> domain -> message.
* :mod:`~points_svc.api.conversions` - messages <-> domain values, and a branch call's tx context.
"""
