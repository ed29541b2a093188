"""The participant and initiator SDK of saga-mesh: everything a service team writes against, in one place.

A participant serves branch RPCs: it reads the :class:`TxContext` from the call's metadata
(:func:`require_context`), runs the business change behind a barrier so that duplicates, empty
rollbacks and late tries are handled (:class:`RunnerBarrier`, the hot path: a unit of work, a plain
function of a :class:`Conn`, run by the process's :class:`StoreRunner`; :class:`SqlBarrier` on an
AsyncSession; :class:`RedisBarrier`), and raises the
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
    RunnerBarrier,
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
from meshkit.store import Conn, StoreRunner, Unit
from meshkit.tx.context import Op, TxContext, TxMode, from_metadata, require_context
from meshkit.tx.finality import CoordinatorFinality
from meshkit.tx.initiator import CoordinatorClient, Msg, Saga, Tcc, TccBranch, local_gid, msg, saga, tcc

__all__ = [
    "BARRIER_VERSIONS",
    "AlreadyExists",
    "BarrierCleaner",
    "BarrierResult",
    "BranchFailure",
    "BranchOngoing",
    "Conn",
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
    "RunnerBarrier",
    "Saga",
    "SqlBarrier",
    "StoreRunner",
    "Tcc",
    "TccBranch",
    "TransientError",
    "TxContext",
    "TxMode",
    "Unauthenticated",
    "Unit",
    "boot",
    "from_metadata",
    "local_gid",
    "mesh_channel",
    "msg",
    "require_context",
    "saga",
    "tcc",
]
