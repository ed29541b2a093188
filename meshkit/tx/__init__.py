"""Transactions on the wire, between initiators, the coordinator and participants.

* :mod:`~meshkit.tx.context` - the :class:`TxContext` a branch call carries, to and from metadata.
* :mod:`~meshkit.tx.target` - branch targets ``host:port/package.Service/Method``, parsed without grpc.
* :mod:`~meshkit.tx.branchcall` - raw-bytes unary calls to branch targets over pooled channels.
* :mod:`~meshkit.tx.initiator` - the ``tcc`` / ``saga`` / ``msg`` builders and the coordinator client.
* :mod:`~meshkit.tx.finality` - ``Coordinator.FinishedGids`` as a barrier cleaner's finality oracle.
"""
