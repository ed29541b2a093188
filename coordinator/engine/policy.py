"""Retry policy: how a branch call's result changes its op (DESIGN.md section 3).

* ``OK``: the op succeeded.
* ``FAILURE`` (``ABORTED``): final for ops that may fail (saga action, MSG check-back); for ops that
  must succeed (confirm, cancel, compensate, MSG action) it is retried like a transient error.
* ``ONGOING`` (``FAILED_PRECONDITION``): retried after ``retry_interval_ms`` (no growth).
* ``TRANSIENT``: retried after ``retry_interval_ms * 2**(attempts-1)``, randomised by +-``jitter`` and
  capped at ``max_backoff_ms``.

``retry_limit`` counts attempts (the first call included). Once an op has made ``retry_limit``
attempts without success: an op that may fail gives up (saga action: failed, the saga compensates);
an op that must succeed (and the MSG check-back, which asks until it gets an answer) keeps being
retried at the backoff cap and makes the transaction **stuck**.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from coordinator.engine.model import BranchOp, Mode, OpStatus, TxOptions
from coordinator.engine.ports import BranchResult, Outcome
from meshkit.tx.context import Op

MAX_ERROR_LEN = 1000


def may_fail(mode: Mode, op: Op) -> bool:
    """True for ops whose business failure is final: saga actions and the MSG check-back."""
    return (mode is Mode.SAGA and op is Op.ACTION) or op is Op.MSG


def gives_up(mode: Mode, op: Op) -> bool:
    """True for ops that stop being retried past the retry limit (saga actions only)."""
    return mode is Mode.SAGA and op is Op.ACTION


@dataclass(frozen=True, slots=True)
class ResultChange:
    """An op after a result was applied."""

    op: BranchOp
    stuck: bool = False  # past its retry limit and still retried: the transaction is stuck
    gave_up: bool = False  # failed for good


class RetryPolicy:
    """Backoff computation and result application; ``rng`` is injected so tests are deterministic."""

    def __init__(self, max_backoff_ms: int, jitter: float, rng: random.Random | None = None) -> None:
        if max_backoff_ms < 1:
            raise ValueError("max_backoff_ms must be >= 1")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError("jitter must be in 0..1")
        self.max_backoff_ms = max_backoff_ms
        self.jitter = jitter
        self._rng = rng or random.Random()

    def backoff_ms(self, attempts: int, interval_ms: int) -> int:
        """Delay before the next attempt after ``attempts`` failed ones: exponential, jittered, capped."""
        exponent = max(0, attempts - 1)
        base = float(interval_ms) * 2.0 ** min(exponent, 40)
        spread = base * self.jitter
        delay = base + self._rng.uniform(-spread, spread) if spread else base
        return max(1, min(self.max_backoff_ms, int(delay + 0.5)))

    def apply(
        self, mode: Mode, op: BranchOp, result: BranchResult, options: TxOptions, now: int
    ) -> ResultChange:
        """The op after ``result`` of its latest attempt (``op.attempts`` already counts that attempt)."""
        if result.outcome is Outcome.OK:
            done = replace(op, status=OpStatus.SUCCEEDED, last_error="", next_attempt_at=None, updated_at=now)
            return ResultChange(done)
        error = _error_text(result)
        if result.outcome is Outcome.FAILURE and may_fail(mode, op.op):
            failed = replace(
                op, status=OpStatus.FAILED, last_error=error, next_attempt_at=None, updated_at=now
            )
            return ResultChange(failed, gave_up=True)
        past_limit = op.attempts >= options.retry_limit
        if past_limit and gives_up(mode, op.op):
            message = f"{error} (gave up after {op.attempts} attempts)"
            failed = replace(
                op, status=OpStatus.FAILED, last_error=message, next_attempt_at=None, updated_at=now
            )
            return ResultChange(failed, gave_up=True)
        if result.outcome is Outcome.ONGOING:
            delay = options.retry_interval_ms
        else:
            delay = self.backoff_ms(op.attempts, options.retry_interval_ms)
        retry = replace(op, last_error=error, next_attempt_at=now + delay, updated_at=now)
        return ResultChange(retry, stuck=past_limit)


def _error_text(result: BranchResult) -> str:
    label = {Outcome.FAILURE: "ABORTED", Outcome.ONGOING: "FAILED_PRECONDITION"}.get(result.outcome, "")
    text = f"{label}: {result.detail}" if label and not result.detail.startswith(label) else result.detail
    text = text or result.outcome.value
    return text[:MAX_ERROR_LEN]
