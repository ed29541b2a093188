"""pay_svc's gRPC face.

* :mod:`~pay_svc.api.servicer` - the ``meshpb.pay.v1.Pay`` servicer: convert, call the domain, convert back.
* :mod:`~pay_svc.api.conversions` - protobuf <-> domain values (an unknown enum value is bad input).
"""
