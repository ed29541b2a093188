"""The overview's pure helpers without a stack: fixed-count loop, CPU meter, ratios, targets, options."""

from __future__ import annotations

import asyncio
import os

import pytest

from bench import __main__ as bench_main
from bench.common import (
    CpuMeter,
    LoadResult,
    Phase,
    cpu_used,
    fixed_count,
    ms_per_unit,
    process_cpu_seconds,
    ratio,
)
from bench.overview import parse_args
from bench.overview_report import mesh_over_bare, process_columns, targets, vs_direct
from bench.targets import MISSED, NOT_RUN, OK, Target, meets, number


def phase(group: str, name: str, rate: float, cpu: dict[str, float], backend: str = "sqlite") -> Phase:
    """A phase of 2 s that did ``2 * rate`` units of 10 ms each."""
    units = round(2 * rate)
    return Phase(group, name, backend, LoadResult(4, 2.0, [0.010] * units), cpu)


async def test_fixed_count_makes_exactly_total_calls_between_the_workers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[int] = []

    async def call(n: int) -> None:
        await asyncio.sleep(0)
        seen.append(n)
        if n % 10 == 0:
            raise RuntimeError(f"refused {n}")

    result = await fixed_count(call, total=95, concurrency=8, label="burst")
    assert sorted(seen) == list(range(95))
    assert (result.count, result.errors) == (85, 10)
    assert "burst: RuntimeError: refused 0" in capsys.readouterr().err


def test_cpu_meter_reads_this_process_as_client_and_deltas_never_go_negative() -> None:
    meter = CpuMeter.of({"self": os.getpid()})
    before = meter.read()
    sum(i * i for i in range(300_000))  # some CPU of this process
    after = meter.read()
    assert set(after) == {"self", "client"}
    assert after["client"] >= before["client"]
    assert process_cpu_seconds(os.getpid()) > 0
    assert process_cpu_seconds(2**22 + 12345) == 0.0  # no such pid
    assert cpu_used({"a": 2.0, "b": 1.0}, {"a": 2.5, "b": 0.5, "c": 1.0}) == {"a": 0.5, "b": 0.0, "c": 1.0}


def test_ms_per_unit_and_ratio() -> None:
    assert ms_per_unit({"coordinator": 0.5, "client": 0.25}, 100) == {"coordinator": 5.0, "client": 2.5}
    assert ms_per_unit({"coordinator": 0.5}, 0) == {"coordinator": 0.0}
    assert ratio(3.0, 4.0) == 0.75
    assert ratio(3.0, 0.0) == 0.0


def test_phase_rate_and_cpu_per_unit() -> None:
    p = phase("TCC 3 branches", "coordinator", 50, {"coordinator": 0.4, "client": 0.1})
    assert p.rate == 50.0
    assert p.cpu_ms == {"coordinator": 4.0, "client": 1.0}
    assert p.total_cpu_ms == pytest.approx(5.0)


def test_vs_direct_compares_with_the_direct_phase_of_the_same_group_and_backend() -> None:
    phases = [
        phase("TCC 3 branches", "direct", 100, {}),
        phase("TCC 3 branches", "coordinator", 70, {}),
        phase("saga 3 steps", "coordinator", 10, {}),
        phase("TCC 3 branches", "coordinator", 30, {}, backend="mariadb"),
    ]
    assert vs_direct(phases[1], phases) == pytest.approx(0.70)
    assert vs_direct(phases[0], phases) is None  # the baseline itself
    assert vs_direct(phases[2], phases) is None  # no direct phase
    assert vs_direct(phases[3], phases) is None  # no direct phase on mariadb


def test_process_columns_keep_first_seen_order_with_the_client_last() -> None:
    phases = [
        phase("a", "x", 1, {"client": 0.1, "coordinator": 0.2, "participant0": 0.1}),
        phase("a", "y", 1, {"redis": 0.1, "coordinator": 0.2}),
    ]
    assert process_columns(phases) == ["coordinator", "participant0", "redis", "client"]


@pytest.mark.parametrize(
    ("value", "comparison", "threshold", "expected"),
    [
        (300.0, ">=", 300.0, True),
        (299.9, ">=", 300.0, False),
        (15.0, "<=", 15.0, True),
        (15.1, "<=", 15.0, False),
        (1000.0, "==", 1000.0, True),
        (999.0, "==", 1000.0, False),
    ],
)
def test_meets(value: float, comparison: str, threshold: float, expected: bool) -> None:
    assert meets(value, comparison, threshold) is expected  # type: ignore[arg-type]


def test_target_rows_say_ok_missed_or_not_run() -> None:
    assert Target("TCC", ">=", 300, 312.4, "tx/s").row() == ("TCC", ">= 300 tx/s", "312 tx/s", OK)
    assert Target("ratio", ">=", 0.7, 0.52).row() == ("ratio", ">= 0.70", "0.52", MISSED)
    assert Target("p50", "<=", 15, None, "ms").row() == ("p50", "<= 15.00 ms", "-", NOT_RUN)
    assert number(5000) == "5,000"
    assert number(0.256) == "0.26"


def test_targets_of_a_run_name_every_issue_target_with_its_measured_value() -> None:
    references = [
        phase("echo RPC", "bare grpc.aio", 5000, {"server": 1.0, "client": 1.0}, backend="-"),
        phase("echo RPC", "MeshServer", 4000, {"server": 1.0, "client": 0.8}, backend="-"),
        phase("participant unit", "raw sqlite3 inline", 10_000, {"client": 1.0}),
        phase("participant unit", "RunnerBarrier, 16 tasks", 6000, {"client": 1.0}),
    ]
    phases = [
        phase("TCC 3 branches", "direct", 400, {}),
        phase("TCC 3 branches", "coordinator", 300, {}),
        phase("saga 3 steps", "direct", 600, {}),
        phase("saga 3 steps", "coordinator", 300, {}),
        phase("PlaceOrder", "c=1", 50, {}),
        phase("PlaceOrder", "c=32", 200, {}, backend="mariadb"),
    ]
    # Server CPU per echo: bare 1.0 s / 10,000 calls, mesh 1.0 s / 8,000 calls -> +25%.
    assert mesh_over_bare(references) == pytest.approx(0.25)
    found = {t.scenario: t for t in targets(references, phases, [])}
    assert found["participant unit (store runner)"].verdict == OK
    assert found["TCC 3 branches, coordinator"].verdict == OK
    assert found["TCC coordinator / direct"].measured == pytest.approx(0.75)
    assert found["saga 3 steps, coordinator"].verdict == MISSED
    assert found["saga coordinator / direct"].verdict == MISSED
    assert found["PlaceOrder c=32"].verdict == NOT_RUN  # measured on MariaDB only; the target is SQLite's
    assert found["PlaceOrder p50 at c=1"].measured == pytest.approx(10.0)
    assert found["MeshServer CPU per call over bare"].row()[1:] == ("<= 25.00 %", "25.00 %", OK)


def test_overview_options_and_the_default_run() -> None:
    defaults = parse_args([])
    assert (defaults.levels, defaults.backend) == ([1, 8, 32], ["sqlite", "mariadb"])
    assert (defaults.flash_attempts, defaults.flash_units) == (20_000, 1_000)
    args = parse_args(["--seconds", "1", "--levels", "2,4", "--backend", "sqlite", "--flash-units", "10"])
    assert (args.seconds, args.levels, args.backend, args.flash_units) == (1.0, [2, 4], ["sqlite"], 10)
    with pytest.raises(SystemExit):
        parse_args(["--flash-units", "100", "--flash-attempts", "50"])
    with pytest.raises(SystemExit):
        parse_args(["--backend", "postgres"])
    assert bench_main.DEFAULT == "overview"
    assert {"overview", "msg_overhead", "participant_unit"} <= set(bench_main.BENCHES)
    assert bench_main.DEFAULT not in bench_main.SLOW
