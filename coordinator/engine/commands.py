"""Inputs of the coordinator's commands, as the API layer hands them to the engine (not yet validated)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from coordinator.engine.model import BranchOp, BranchSpec, Event, GlobalTx


@dataclass(frozen=True, slots=True)
class OptionsInput:
    """Per-transaction options as requested; 0 = the coordinator's default."""

    timeout_ms: int = 0
    retry_interval_ms: int = 0
    retry_limit: int = 0
    request_timeout_ms: int = 0
    concurrent: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PrepareCommand:
    """Open a TCC transaction, or record a MSG transaction's branches before its local transaction."""

    gid: str
    mode: int
    options: OptionsInput = OptionsInput()
    branches: tuple[BranchSpec, ...] = ()  # MSG: its branches; TCC: branches registered with the Prepare
    query_prepared: str = ""


@dataclass(frozen=True, slots=True)
class SubmitCommand:
    """Commit a TCC/MSG transaction, or create and run a saga (``branches`` are its steps).

    ``mode`` 0 means "whatever the transaction is" (it must exist then).
    """

    gid: str
    mode: int = 0
    options: OptionsInput = OptionsInput()
    branches: tuple[BranchSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class TxView:
    """A transaction with its ops and history, as ``Query`` shows it."""

    tx: GlobalTx
    ops: tuple[BranchOp, ...]
    history: tuple[Event, ...]
