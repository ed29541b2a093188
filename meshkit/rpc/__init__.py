"""gRPC plumbing every saga-mesh process shares.

* :mod:`~meshkit.rpc.server` - the server bootstrap (health, reflection, graceful stop) and ``boot``.
* :mod:`~meshkit.rpc.interceptors` - the one server interceptor: context, credentials, errors, metrics.
* :mod:`~meshkit.rpc.auth` - mesh credentials (HMAC-signed calls) and the admin token.
* :mod:`~meshkit.rpc.status` - the one mapping between domain errors and gRPC status codes.
* :mod:`~meshkit.rpc.decoding` - undecodable request bodies answered ``INVALID_ARGUMENT``.
* :mod:`~meshkit.rpc.pbtime` - epoch milliseconds <-> ``google.protobuf.Timestamp``.
* :mod:`~meshkit.rpc.health` - the health client: ask one server or wait for several.
"""
