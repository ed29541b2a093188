"""The participant and initiator SDK of saga-mesh: everything a service team writes against, in one place.

A participant serves branch RPCs: it reads the :class:`TxContext` from the call's metadata
(:func:`require_context`), runs the business change behind a barrier (:class:`SqlBarrier` or
:class:`RedisBarrier`) so that duplicates, empty rollbacks and late tries are handled, and raises the
domain errors below; :class:`MeshServer` maps them to gRPC status codes and checks mesh credentials.
An initiator starts transactions with :func:`tcc`, :func:`saga` or :func:`msg` through a
:class:`CoordinatorClient`. Barrier cleaners (:class:`BarrierCleaner`, :class:`RedisBarrierCleaner`)
learn which transactions are final from :class:`CoordinatorFinality`.

Deeper modules (``meshkit.runtime``, ``meshkit.infra``, ``meshkit.rpc``) are the runtime the services
share; they may change between releases, this surface does not without notice.
"""

from meshkit.barrier import (
    BARRIER_VERSIONS,
    BarrierCleaner,
    BarrierResult,
    DuplicateMessage,
    LateTryRejected,
    MessageRolledBack,
    Outcome,
    RedisBarrier,
    RedisBarrierCleaner,
    SqlBarrier,
)
from meshkit.errors import (
    AlreadyExists,
    BranchFailure,
    BranchOngoing,
    FailedPrecondition,
    InvalidArgument,
    MeshError,
    NotFound,
    ResourceExhausted,
    TransientError,
    Unauthenticated,
)
from meshkit.rpc.auth import Credential, mesh_channel
from meshkit.rpc.server import MeshServer, boot
from meshkit.tx.context import Op, TxContext, TxMode, from_metadata, require_context
from meshkit.tx.finality import CoordinatorFinality
from meshkit.tx.initiator import CoordinatorClient, Msg, Saga, Tcc, local_gid, msg, saga, tcc

__all__ = [
    "BARRIER_VERSIONS",
    "AlreadyExists",
    "BarrierCleaner",
    "BarrierResult",
    "BranchFailure",
    "BranchOngoing",
    "CoordinatorClient",
    "CoordinatorFinality",
    "Credential",
    "DuplicateMessage",
    "FailedPrecondition",
    "InvalidArgument",
    "LateTryRejected",
    "MeshError",
    "MeshServer",
    "MessageRolledBack",
    "Msg",
    "NotFound",
    "Op",
    "Outcome",
    "RedisBarrier",
    "RedisBarrierCleaner",
    "ResourceExhausted",
    "Saga",
    "SqlBarrier",
    "Tcc",
    "TransientError",
    "TxContext",
    "TxMode",
    "Unauthenticated",
    "boot",
    "from_metadata",
    "local_gid",
    "mesh_channel",
    "msg",
    "require_context",
    "saga",
    "tcc",
]
