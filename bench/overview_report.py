"""The overview's tables: references, scenarios with their ratios, CPU per process, flash sales, targets."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from bench.common import Phase, print_table, ratio
from bench.flash_sale import FlashOutcome
from bench.targets import Target, number

ECHO_GROUP, BARE, MESH = "echo RPC", "bare grpc.aio", "MeshServer"
UNIT_GROUP, RAW = "participant unit", "raw sqlite3 inline"
DIRECT, COORDINATED = "direct", "coordinator"


def find(phases: Sequence[Phase], group: str, name: str, backend: str | None = None) -> Phase | None:
    """The first phase of ``group`` named ``name`` (on ``backend`` when given)."""
    return next(
        (p for p in phases if (p.group, p.name) == (group, name) and backend in (None, p.backend)), None
    )


def vs_direct(phase: Phase, phases: Sequence[Phase]) -> float | None:
    """The phase's rate over its group's ``direct`` phase on the same backend (None: it has none)."""
    if phase.name == DIRECT:
        return None
    direct = find(phases, phase.group, DIRECT, phase.backend)
    return None if direct is None else ratio(phase.rate, direct.rate)


def process_columns(phases: Sequence[Phase]) -> list[str]:
    """Every process name of ``phases`` in the order first seen, ``client`` last."""
    names: list[str] = []
    for phase in phases:
        names += [n for n in phase.cpu if n not in names]
    return [n for n in names if n != "client"] + (["client"] if "client" in names else [])


def _ratio_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _p(phase: Phase, fraction: float) -> str:
    return f"{phase.load.p(fraction):.1f}" if phase.load.count else "-"


def print_references(references: Sequence[Phase]) -> None:
    """The physical references and what the RPC layer / store runner cost over them."""
    print_table(
        "1. physical references (this machine, this run)",
        ("reference", "way", "in flight", "done", "errors", "rate/s", "p50 ms", "CPU us/unit by process"),
        [
            (
                p.group,
                p.name,
                p.load.concurrency,
                p.load.count,
                p.load.errors,
                number(p.rate),
                _p(p, 0.5),
                ", ".join(f"{k} {v * 1000:,.0f}" for k, v in p.cpu_ms.items()),
            )
            for p in references
        ],
    )
    bare, mesh = find(references, ECHO_GROUP, BARE), find(references, ECHO_GROUP, MESH)
    if bare is not None and mesh is not None:
        over = mesh_over_bare(references)
        print(
            f"MeshServer server CPU per call over bare: {over:+.0%} "
            f"({mesh.cpu_ms.get('server', 0) * 1000:,.0f} vs {bare.cpu_ms.get('server', 0) * 1000:,.0f} us)"
        )
    raw = find(references, UNIT_GROUP, RAW)
    runner = next((p for p in references if p.group == UNIT_GROUP and p.name != RAW), None)
    if raw is not None and runner is not None:
        print(f"store runner / raw sqlite3: {ratio(runner.rate, raw.rate):.2f} of the commits per second")


def mesh_over_bare(references: Sequence[Phase]) -> float | None:
    """MeshServer's server CPU per echo over bare's, minus 1 (None when either did not run)."""
    bare, mesh = find(references, ECHO_GROUP, BARE), find(references, ECHO_GROUP, MESH)
    if bare is None or mesh is None or not bare.cpu_ms.get("server"):
        return None
    return ratio(mesh.cpu_ms.get("server", 0.0), bare.cpu_ms["server"]) - 1


def print_scenarios(references: Sequence[Phase], phases: Sequence[Phase]) -> None:
    """Every scenario's rate, latency and ratios to its direct baseline and to the references."""
    echo, raw = find(references, ECHO_GROUP, BARE), find(references, UNIT_GROUP, RAW)
    echo_rate, raw_rate = (echo.rate if echo else 0.0), (raw.rate if raw else 0.0)
    echo_cpu = echo.total_cpu_ms if echo else 0.0
    print_table(
        "2. scenarios (rate = successful transactions/orders/answers per second)",
        (
            "scenario",
            "phase",
            "backend",
            "in flight",
            "done",
            "errors",
            "rate/s",
            "p50 ms",
            "p99 ms",
            "/direct",
            "/echo",
            "/sqlite",
            "CPU ms/unit",
            "= echo RPCs",
        ),
        [
            (
                p.group,
                p.name,
                p.backend,
                p.load.concurrency,
                p.load.count,
                p.load.errors,
                number(p.rate),
                _p(p, 0.5),
                _p(p, 0.99),
                _ratio_cell(vs_direct(p, phases)),
                f"{ratio(p.rate, echo_rate):.3f}",
                f"{ratio(p.rate, raw_rate):.3f}",
                f"{p.total_cpu_ms:.2f}",
                f"{ratio(p.total_cpu_ms, echo_cpu):.1f}",
            )
            for p in phases
        ],
    )
    print(
        "/direct = rate over the same calls without the coordinator; /echo and /sqlite = rate over the bare"
        " echo RPC/s and the raw sqlite3 unit commits/s; CPU ms/unit = all processes; = echo RPCs = that"
        " CPU in bare echo RPCs (server + client CPU of one)"
    )


def print_cpu(phases: Sequence[Phase]) -> None:
    """CPU ms per unit of every process, one table per set of processes."""
    sets: dict[tuple[str, ...], list[Phase]] = {}
    for phase in phases:
        sets.setdefault(tuple(process_columns([phase])), []).append(phase)
    for number_, (columns, members) in enumerate(sets.items(), start=1):
        print_table(
            f"3.{number_} CPU ms per unit by process (/proc utime+stime before/after the phase)",
            ("scenario", "phase", "backend", *columns, "total"),
            [
                (
                    p.group,
                    p.name,
                    p.backend,
                    *(f"{p.cpu_ms.get(c, 0.0):.2f}" for c in columns),
                    f"{p.total_cpu_ms:.2f}",
                )
                for p in members
            ],
        )


def print_flashes(references: Sequence[Phase], flashes: Sequence[FlashOutcome]) -> None:
    """What each flash burst answered and sold."""
    echo = find(references, ECHO_GROUP, BARE)
    print_table(
        "4. flash-sale burst (answers = tickets + 'sold out'; sold = stock_svc's sold units of the sale)",
        (
            "backend",
            "attempts",
            "answers/s",
            "/echo",
            "p99 ms",
            "tickets",
            "sold out",
            "errors",
            "orders ok",
            "failed",
            "pending",
            "sold",
            "drain s",
            "exactly sold",
        ),
        [
            (
                f.burst.backend,
                f.burst.load.count + f.burst.load.errors,
                number(f.burst.rate),
                f"{ratio(f.burst.rate, echo.rate if echo else 0.0):.2f}",
                _p(f.burst, 0.99),
                f.tickets,
                f.sold_out,
                f.burst.load.errors,
                f.succeeded,
                f.failed,
                f.pending,
                f.sold,
                f"{f.drain_seconds:.1f}",
                "yes" if f.exactly_sold else f"NO (units {f.units})",
            )
            for f in flashes
        ],
    )


def targets(
    references: Sequence[Phase], phases: Sequence[Phase], flashes: Sequence[FlashOutcome]
) -> list[Target]:
    """The issue's targets (SQLite unless named) with the measured values of this run."""

    def rate(group: str, name: str, backend: str = "sqlite") -> float | None:
        found = find([*references, *phases], group, name, backend)
        return None if found is None else found.rate

    def direct_ratio(group: str) -> float | None:
        found = find(phases, group, COORDINATED, "sqlite")
        return None if found is None else vs_direct(found, phases)

    unit = next((p for p in references if p.group == UNIT_GROUP and p.name != RAW), None)
    c1 = find(phases, "PlaceOrder", "c=1", "sqlite")
    echo = find(references, ECHO_GROUP, BARE)
    over = mesh_over_bare(references)
    rows = [
        Target("participant unit (store runner)", ">=", 5000, None if unit is None else unit.rate, "/s"),
        Target("TCC 3 branches, coordinator", ">=", 300, rate("TCC 3 branches", COORDINATED), "tx/s"),
        Target("TCC coordinator / direct", ">=", 0.70, direct_ratio("TCC 3 branches")),
        Target("saga 3 steps, coordinator", ">=", 500, rate("saga 3 steps", COORDINATED), "tx/s"),
        Target("saga coordinator / direct", ">=", 0.70, direct_ratio("saga 3 steps")),
        Target("PlaceOrder c=32", ">=", 150, rate("PlaceOrder", "c=32"), "/s"),
        Target("PlaceOrder p50 at c=1", "<=", 15, None if c1 is None else c1.load.p(0.5), "ms"),
    ]
    for f in flashes:
        answers = ratio(f.burst.rate, echo.rate) if echo else None
        rows.append(Target(f"FlashBuy answers / echo ({f.burst.backend})", ">=", 0.6, answers))
        rows.append(Target(f"flash units sold ({f.burst.backend})", "==", f.units, float(f.sold)))
    rows.append(
        Target("MeshServer CPU per call over bare", "<=", 25, None if over is None else over * 100, "%")
    )
    return rows


def print_overview(
    references: Sequence[Phase],
    phases: Sequence[Phase],
    flashes: Sequence[FlashOutcome],
    args: argparse.Namespace,
) -> None:
    """Every table of the overview, references first, targets last."""
    print(
        f"\npython -m bench: {os.cpu_count()} CPUs, {args.seconds:g} s per phase after a 1 s warm-up, "
        f"{args.concurrency} initiators (TCC/saga/MSG/unit), {args.echo_concurrency} echo RPCs in flight"
    )
    print_references(references)
    print_scenarios(references, phases)
    print_cpu([*references, *phases, *(f.burst for f in flashes)])
    print_flashes(references, flashes)
    print_table(
        "5. issue 11 targets (2 cores, SQLite unless named)",
        ("target", "goal", "measured", "verdict"),
        [t.row() for t in targets(references, phases, flashes)],
    )
