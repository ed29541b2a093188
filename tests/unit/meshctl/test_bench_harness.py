"""The benchmark harness without a stack: percentiles, the closed loop, the table, the dispatcher."""

from __future__ import annotations

import asyncio

import pytest

from bench import __main__ as bench_main
from bench.common import LoadResult, closed_loop, percentile, print_table
from bench.place_order import parse_args


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) == 0.0


def test_load_result_rate_and_milliseconds() -> None:
    result = LoadResult(concurrency=2, seconds=2.0, latencies=[0.010, 0.020, 0.030, 0.040], errors=1)
    assert result.count == 4
    assert result.rate == 2.0
    assert result.p(0.5) == pytest.approx(20.0)


async def test_closed_loop_counts_successes_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    async def call(n: int) -> None:
        await asyncio.sleep(0.001)
        if n % 5 == 0:
            raise RuntimeError(f"refused {n}")

    result = await closed_loop(call, concurrency=4, seconds=0.2, label="fake")
    assert result.count > 0
    assert result.errors > 0
    assert result.errors <= result.count
    assert 0.2 <= result.seconds < 1.0
    assert "fake: RuntimeError: refused 0" in capsys.readouterr().err


def test_table_aligns_columns(capsys: pytest.CaptureFixture[str]) -> None:
    print_table("title", ("backend", "orders/s"), [("sqlite", 12.345), ("mariadb", 7.0)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "title",
        "backend  orders/s",
        "-------  --------",
        "sqlite       12.3",
        "mariadb       7.0",
    ]


def test_place_order_options() -> None:
    args = parse_args(["--seconds", "3", "--concurrency", "2,4", "--backend", "sqlite"])
    assert (args.seconds, args.concurrency, args.backend) == (3.0, [2, 4], ["sqlite"])
    defaults = parse_args([])
    assert (defaults.concurrency, defaults.backend) == ([1, 8, 32], ["sqlite", "mariadb"])
    with pytest.raises(SystemExit):
        parse_args(["--backend", "postgres"])


def test_dispatcher_knows_every_bench_and_refuses_others(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(bench_main.BENCHES) >= {"place_order", "tcc_overhead"}
    assert bench_main.main(["nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
    assert bench_main.main(["--help"]) == 0
    assert "place_order" in capsys.readouterr().out
