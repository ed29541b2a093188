"""The port through which a barrier cleaner learns which global transactions are final.

The barrier must keep the rows of a transaction that can still be driven: a cancel or compensate
retried after the rows are gone would be taken for an empty rollback and skip its undo. Only the
coordinator knows whether a gid is final, so the cleaners ask it through this small protocol (the
gRPC adapter is :class:`meshkit.tx.finality.CoordinatorFinality`; meshkit.barrier itself has no gRPC).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class FinalityUnavailable(Exception):
    """The coordinator could not answer; a cleaner deletes nothing this round and tries again later."""


class FinalityOracle(Protocol):
    """Answers which of some gids may lose their barrier rows."""

    async def final(self, gids: Sequence[str]) -> set[str]:
        """The subset of ``gids`` that is final (succeeded/failed) or unknown to the coordinator.

        Raises :class:`FinalityUnavailable` when that cannot be learned now.
        """
        ...
