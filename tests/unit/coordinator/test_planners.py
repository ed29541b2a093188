"""Mode planners: what to call next and which status follows, from a transaction's ops and the time."""

from __future__ import annotations

from dataclasses import replace

from coordinator.engine.model import Mode, OpStatus, Status
from coordinator.engine.msg import CHECK_BACK_COMMITTED, CHECK_BACK_ROLLED_BACK, MsgPlanner
from coordinator.engine.saga import SagaPlanner
from coordinator.engine.tcc import TIMEOUT_REASON, TccPlanner
from meshkit.tx.context import Op
from tests.unit.coordinator.factories import NOW, OPTIONS, op, ops, tx

S, P, F = OpStatus.SUCCEEDED, OpStatus.PENDING, OpStatus.FAILED


def tcc_ops(confirm: OpStatus = P, cancel: OpStatus = P) -> dict:  # type: ignore[type-arg]
    return ops(
        op("a", Op.TRY, S), op("a", Op.CONFIRM, confirm), op("a", Op.CANCEL, cancel),
        op("b", Op.TRY, S, position=2), op("b", Op.CONFIRM, P, position=2), op("b", Op.CANCEL, P, position=2),
    )  # fmt: skip


# ---------------------------------------------------------------- TCC


def test_tcc_prepared_waits_for_the_initiator_until_the_timeout() -> None:
    decision = TccPlanner().plan(tx(Mode.TCC, Status.PREPARED), tcc_ops(), NOW)
    assert (decision.status, decision.calls, decision.wake_at) == (Status.PREPARED, (), NOW + 5_000)


def test_tcc_prepared_past_timeout_aborts_and_cancels_every_branch() -> None:
    decision = TccPlanner().plan(tx(Mode.TCC, Status.PREPARED, timeout_at=NOW), tcc_ops(), NOW)
    assert decision.status is Status.ABORTING
    assert decision.reason == TIMEOUT_REASON
    assert set(decision.calls) == {("a", Op.CANCEL), ("b", Op.CANCEL)}


def test_tcc_prepared_past_timeout_without_branches_fails_at_once() -> None:
    decision = TccPlanner().plan(tx(Mode.TCC, Status.PREPARED, timeout_at=NOW - 1), {}, NOW)
    assert (decision.status, decision.reason) == (Status.FAILED, TIMEOUT_REASON)


def test_tcc_submitted_confirms_all_concurrently() -> None:
    decision = TccPlanner().plan(tx(Mode.TCC, Status.SUBMITTED), tcc_ops(), NOW)
    assert set(decision.calls) == {("a", Op.CONFIRM), ("b", Op.CONFIRM)}


def test_tcc_submitted_waits_for_the_next_attempt() -> None:
    state = tcc_ops(confirm=S)
    state[("b", Op.CONFIRM)] = replace(state[("b", Op.CONFIRM)], next_attempt_at=NOW + 250)
    decision = TccPlanner().plan(tx(Mode.TCC, Status.SUBMITTED), state, NOW)
    assert (decision.calls, decision.wake_at) == ((), NOW + 250)


def test_tcc_all_confirmed_succeeds() -> None:
    state = tcc_ops(confirm=S)
    state[("b", Op.CONFIRM)] = replace(state[("b", Op.CONFIRM)], status=S)
    decision = TccPlanner().plan(tx(Mode.TCC, Status.SUBMITTED), state, NOW)
    assert decision.status is Status.SUCCEEDED
    assert decision.final


# ---------------------------------------------------------------- SAGA


def saga_ops(*statuses: tuple[OpStatus, int]) -> dict:  # type: ignore[type-arg]
    items = []
    for i, (status, attempts) in enumerate(statuses, start=1):
        items.append(op(f"s{i}", Op.ACTION, status, attempts, position=i))
        items.append(op(f"s{i}", Op.COMPENSATE, P, position=i))
    return ops(*items)


def test_saga_runs_the_first_unfinished_step() -> None:
    decision = SagaPlanner().plan(tx(Mode.SAGA, Status.SUBMITTED), saga_ops((S, 1), (P, 0), (P, 0)), NOW)
    assert decision.calls == (("s2", Op.ACTION),)


def test_saga_failure_compensates_started_steps_last_first() -> None:
    state = saga_ops((S, 1), (F, 1), (P, 0))
    decision = SagaPlanner().plan(tx(Mode.SAGA, Status.SUBMITTED), state, NOW)
    assert decision.status is Status.ABORTING
    assert decision.reason.startswith("branch s2 action failed")
    assert decision.calls == (("s2", Op.COMPENSATE),)  # the failed step first; s3 never started
    state[("s2", Op.COMPENSATE)] = replace(state[("s2", Op.COMPENSATE)], status=S)
    after = SagaPlanner().plan(tx(Mode.SAGA, Status.ABORTING), state, NOW)
    assert after.calls == (("s1", Op.COMPENSATE),)
    state[("s1", Op.COMPENSATE)] = replace(state[("s1", Op.COMPENSATE)], status=S)
    assert SagaPlanner().plan(tx(Mode.SAGA, Status.ABORTING), state, NOW).status is Status.FAILED


def test_saga_step_without_compensation_is_skipped_on_rollback() -> None:
    state = ops(op("s1", Op.ACTION, F, 1))
    assert SagaPlanner().plan(tx(Mode.SAGA, Status.SUBMITTED), state, NOW).status is Status.FAILED


def test_saga_concurrent_runs_every_ready_step() -> None:
    concurrent = tx(Mode.SAGA, Status.SUBMITTED, options=replace(OPTIONS, concurrent=True))
    state = ops(
        op("a", Op.ACTION, S, 1, position=1),
        op("b", Op.ACTION, P, 0, position=2, depends_on=("a",)),
        op("c", Op.ACTION, P, 0, position=3, depends_on=("a",)),
        op("d", Op.ACTION, P, 0, position=4, depends_on=("b", "c")),
    )
    assert set(SagaPlanner().plan(concurrent, state, NOW).calls) == {("b", Op.ACTION), ("c", Op.ACTION)}


def test_saga_concurrent_compensates_dependents_before_their_dependencies() -> None:
    aborting = tx(Mode.SAGA, Status.ABORTING, options=replace(OPTIONS, concurrent=True))
    state = ops(
        op("a", Op.ACTION, S, 1, position=1),
        op("a", Op.COMPENSATE, P, position=1),
        op("b", Op.ACTION, S, 1, position=2, depends_on=("a",)),
        op("b", Op.COMPENSATE, P, position=2, depends_on=("a",)),
        op("c", Op.ACTION, F, 1, position=3),
        op("c", Op.COMPENSATE, P, position=3),
        op("d", Op.ACTION, P, 0, position=4, depends_on=("c",)),
        op("d", Op.COMPENSATE, P, position=4, depends_on=("c",)),
    )
    decision = SagaPlanner().plan(aborting, state, NOW)
    assert set(decision.calls) == {("b", Op.COMPENSATE), ("c", Op.COMPENSATE)}  # a waits for b; d never ran


def test_saga_counts_an_attempted_step_as_started_even_without_an_answer() -> None:
    # A crash mid-call leaves attempts=1 and status pending: that step may have run, so it is compensated.
    state = saga_ops((S, 1), (P, 1))
    decision = SagaPlanner().plan(tx(Mode.SAGA, Status.ABORTING), state, NOW)
    assert decision.calls == (("s2", Op.COMPENSATE),)


# ---------------------------------------------------------------- MSG


def msg_ops(check: OpStatus = P, check_next: int | None = None) -> dict:  # type: ignore[type-arg]
    return ops(
        op("00", Op.MSG, check, position=0, next_attempt_at=check_next),
        op("01", Op.ACTION, P, position=1),
        op("02", Op.ACTION, P, position=2),
    )


def test_msg_prepared_waits_until_the_timeout() -> None:
    decision = MsgPlanner().plan(tx(Mode.MSG, Status.PREPARED), msg_ops(), NOW)
    assert (decision.calls, decision.wake_at) == ((), NOW + 5_000)


def test_msg_past_timeout_calls_the_check_back() -> None:
    decision = MsgPlanner().plan(tx(Mode.MSG, Status.PREPARED, timeout_at=NOW), msg_ops(), NOW)
    assert decision.calls == (("00", Op.MSG),)


def test_msg_check_back_later_waits() -> None:
    decision = MsgPlanner().plan(
        tx(Mode.MSG, Status.PREPARED, timeout_at=NOW), msg_ops(check_next=NOW + 70), NOW
    )
    assert (decision.calls, decision.wake_at) == ((), NOW + 70)


def test_msg_check_back_committed_submits_and_calls_every_branch() -> None:
    decision = MsgPlanner().plan(tx(Mode.MSG, Status.PREPARED, timeout_at=NOW), msg_ops(check=S), NOW)
    assert (decision.status, decision.reason) == (Status.SUBMITTED, CHECK_BACK_COMMITTED)
    assert set(decision.calls) == {("01", Op.ACTION), ("02", Op.ACTION)}


def test_msg_check_back_rolled_back_fails() -> None:
    decision = MsgPlanner().plan(tx(Mode.MSG, Status.PREPARED, timeout_at=NOW), msg_ops(check=F), NOW)
    assert (decision.status, decision.reason) == (Status.FAILED, CHECK_BACK_ROLLED_BACK)


def test_msg_aborting_fails_without_calls() -> None:
    decision = MsgPlanner().plan(tx(Mode.MSG, Status.ABORTING, reason="operator"), msg_ops(), NOW)
    assert (decision.status, decision.calls, decision.reason) == (Status.FAILED, (), "operator")


def test_item9_3_msg_dependent_branch_waits_for_its_dependencies() -> None:
    branches = ops(
        op("01", Op.ACTION, P, position=1),
        op("02", Op.ACTION, P, position=2, next_attempt_at=NOW + 40),
        op("03", Op.ACTION, P, position=3, depends_on=("01", "02")),
    )
    first = MsgPlanner().plan(tx(Mode.MSG, Status.SUBMITTED), branches, NOW)
    assert (first.status, first.calls) == (Status.SUBMITTED, (("01", Op.ACTION),))
    branches[("01", Op.ACTION)] = replace(branches[("01", Op.ACTION)], status=S)
    waiting = MsgPlanner().plan(tx(Mode.MSG, Status.SUBMITTED), branches, NOW)
    assert (waiting.calls, waiting.wake_at) == ((), NOW + 40)  # 02 retries later, 03 still held back
    branches[("02", Op.ACTION)] = replace(branches[("02", Op.ACTION)], status=S, next_attempt_at=None)
    last = MsgPlanner().plan(tx(Mode.MSG, Status.SUBMITTED), branches, NOW)
    assert last.calls == (("03", Op.ACTION),)
    branches[("03", Op.ACTION)] = replace(branches[("03", Op.ACTION)], status=S)
    assert MsgPlanner().plan(tx(Mode.MSG, Status.SUBMITTED), branches, NOW).status is Status.SUCCEEDED
