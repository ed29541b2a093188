"""Retry policy: backoff, jitter, cap, and what each result does to an op."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from coordinator.engine.model import Mode, OpStatus
from coordinator.engine.policy import RetryPolicy
from coordinator.engine.ports import BranchResult, Outcome
from meshkit.tx.context import Op
from tests.unit.coordinator.factories import NOW, OPTIONS, op


def test_backoff_doubles_from_the_interval_without_jitter() -> None:
    policy = RetryPolicy(max_backoff_ms=60_000, jitter=0.0)
    assert [policy.backoff_ms(n, 100) for n in range(1, 6)] == [100, 200, 400, 800, 1600]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(max_backoff_ms=1_000, jitter=0.5, rng=random.Random(1))
    assert all(policy.backoff_ms(n, 100) <= 1_000 for n in range(1, 60))
    assert policy.backoff_ms(50, 100) == 1_000


def test_backoff_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(max_backoff_ms=1_000_000, jitter=0.2, rng=random.Random(7))
    delays = [policy.backoff_ms(3, 1_000) for _ in range(200)]
    assert min(delays) >= 3_200
    assert max(delays) <= 4_800
    assert len(set(delays)) > 50  # actually randomised


def test_ok_succeeds_and_clears_the_error() -> None:
    policy = RetryPolicy(60_000, 0.0)
    started = replace(op("b", Op.CONFIRM, attempts=2), last_error="UNAVAILABLE: x", next_attempt_at=NOW)
    change = policy.apply(Mode.TCC, started, BranchResult(Outcome.OK), OPTIONS, NOW)
    assert (change.op.status, change.op.last_error, change.op.next_attempt_at) == (
        OpStatus.SUCCEEDED,
        "",
        None,
    )


def test_saga_action_business_failure_is_final() -> None:
    change = RetryPolicy(60_000, 0.0).apply(
        Mode.SAGA,
        op("b", Op.ACTION, attempts=1),
        BranchResult(Outcome.FAILURE, "ABORTED: no stock"),
        OPTIONS,
        NOW,
    )
    assert change.op.status is OpStatus.FAILED
    assert change.op.last_error == "ABORTED: no stock"
    assert change.gave_up


def test_confirm_business_failure_is_retried() -> None:
    change = RetryPolicy(60_000, 0.0).apply(
        Mode.TCC, op("b", Op.CONFIRM, attempts=1), BranchResult(Outcome.FAILURE, "ABORTED: bug"), OPTIONS, NOW
    )
    assert change.op.status is OpStatus.PENDING
    assert change.op.next_attempt_at == NOW + 100


def test_ongoing_keeps_the_interval() -> None:
    policy = RetryPolicy(60_000, 0.0)
    change = policy.apply(
        Mode.SAGA, op("b", Op.ACTION, attempts=2), BranchResult(Outcome.ONGOING), OPTIONS, NOW
    )
    assert change.op.next_attempt_at == NOW + OPTIONS.retry_interval_ms
    assert change.op.last_error.startswith("FAILED_PRECONDITION")


def test_transient_backs_off_exponentially() -> None:
    policy = RetryPolicy(60_000, 0.0)
    change = policy.apply(
        Mode.MSG,
        op("b", Op.ACTION, attempts=2),
        BranchResult(Outcome.TRANSIENT, "UNAVAILABLE: down"),
        OPTIONS,
        NOW,
    )
    assert change.op.next_attempt_at == NOW + 200
    assert change.op.last_error == "UNAVAILABLE: down"


def test_saga_action_gives_up_at_the_retry_limit() -> None:
    change = RetryPolicy(60_000, 0.0).apply(
        Mode.SAGA,
        op("b", Op.ACTION, attempts=3),
        BranchResult(Outcome.TRANSIENT, "UNAVAILABLE"),
        OPTIONS,
        NOW,
    )
    assert change.op.status is OpStatus.FAILED
    assert "gave up after 3 attempts" in change.op.last_error


@pytest.mark.parametrize(
    ("mode", "kind"),
    [(Mode.TCC, Op.CONFIRM), (Mode.TCC, Op.CANCEL), (Mode.SAGA, Op.COMPENSATE), (Mode.MSG, Op.ACTION)],
)
def test_must_succeed_ops_become_stuck_past_the_limit_and_keep_retrying(mode: Mode, kind: Op) -> None:
    policy = RetryPolicy(60_000, 0.0)
    before = policy.apply(mode, op("b", kind, attempts=2), BranchResult(Outcome.TRANSIENT, "x"), OPTIONS, NOW)
    at_limit = policy.apply(
        mode, op("b", kind, attempts=3), BranchResult(Outcome.TRANSIENT, "x"), OPTIONS, NOW
    )
    assert not before.stuck
    assert at_limit.stuck
    assert at_limit.op.status is OpStatus.PENDING
    assert at_limit.op.next_attempt_at is not None


def test_check_back_failure_is_final_and_ongoing_asks_again() -> None:
    policy = RetryPolicy(60_000, 0.0)
    check = op("00", Op.MSG, attempts=1)
    failed = policy.apply(
        Mode.MSG, check, BranchResult(Outcome.FAILURE, "ABORTED: rolled back"), OPTIONS, NOW
    )
    later = policy.apply(Mode.MSG, check, BranchResult(Outcome.ONGOING), OPTIONS, NOW)
    assert failed.op.status is OpStatus.FAILED
    assert later.op.status is OpStatus.PENDING


def test_policy_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(1_000, 1.5)
    with pytest.raises(ValueError, match="max_backoff_ms"):
        RetryPolicy(0, 0.1)
