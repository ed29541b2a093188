"""Output of ``meshctl audit``: a rich table for people, a JSON document for scripts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from meshctl.audit.checks import all_ok, all_pass
from meshctl.audit.gather import AuditOutcome
from meshctl.audit.model import CheckResult, Verdict

MAX_JSON_VIOLATIONS = 100
MAX_TABLE_VIOLATIONS = 3
VERDICT_STYLE = {Verdict.PASS: "bold green", Verdict.FAIL: "bold red", Verdict.SKIP: "bold yellow"}


def outcome_json(outcome: AuditOutcome) -> dict[str, Any]:
    """The audit document scripts read (``ok`` is false when any invariant is violated)."""
    view = outcome.report.coordinator
    stuck = {tx.gid for tx in view.unfinished if tx.stuck} | set(view.stuck_gids)
    return {
        "ok": all_ok(outcome.results),
        "all_pass": all_pass(outcome.results),
        "attempts": outcome.attempts,
        "at_rest": view.at_rest,
        "coordinator": {
            "complete": view.complete,
            "unfinished": len(view.unfinished),
            "stuck": sorted(stuck),
            "activity_during_snapshot": view.activity,
            "note": view.note,
        },
        "checks": [_check_json(r) for r in outcome.results],
    }


def _check_json(result: CheckResult) -> dict[str, Any]:
    return {
        "key": result.key,
        "title": result.title,
        "result": result.verdict.value,
        "numbers": result.numbers,
        "violations": list(result.violations[:MAX_JSON_VIOLATIONS]),
        "violation_count": len(result.violations),
        "note": result.note,
    }


def _numbers(result: CheckResult) -> str:
    return "\n".join(f"{k} {v}" for k, v in result.numbers.items())


def _details(result: CheckResult) -> Text:
    lines = list(result.violations[:MAX_TABLE_VIOLATIONS])
    more = len(result.violations) - len(lines)
    if more > 0:
        lines.append(f"... and {more} more (--json lists them)")
    text = Text("\n".join(lines), style="red" if result.verdict is Verdict.FAIL else "yellow")
    if result.note:
        if lines:
            text.append("\n")
        text.append(result.note, style="dim")
    return text


def summary_line(outcome: AuditOutcome) -> Text:
    """One line: passed, or how many invariants failed / could not be judged."""
    failed = [r for r in outcome.results if r.verdict is Verdict.FAIL]
    skipped = [r for r in outcome.results if r.verdict is Verdict.SKIP]
    if failed:
        return Text(f"audit FAILED: {len(failed)} invariant(s) violated", style="bold red")
    if skipped:
        return Text(
            f"audit passed with {len(skipped)} invariant(s) not judged: transactions were in flight",
            style="bold yellow",
        )
    return Text(f"audit passed: all {len(outcome.results)} invariants hold", style="bold green")


def print_outcome(console: Console, outcome: AuditOutcome) -> None:
    """The invariant table and a one-line verdict."""
    view = outcome.report.coordinator
    caption = (
        f"coordinator: {len(view.unfinished)} unfinished, {len(view.stuck_gids)} stuck"
        f"{'' if view.at_rest else ' (figures may be mid-change)'}; snapshot {outcome.attempts}"
    )
    if view.note:
        caption += f"\n{view.note}"
    table = Table(title="meshctl audit: invariants of DESIGN.md section 8", caption=caption)
    table.add_column("invariant", overflow="fold", ratio=3)
    table.add_column("result", no_wrap=True)
    table.add_column("numbers", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=4)
    for result in outcome.results:
        table.add_row(
            result.title,
            Text(result.verdict.value, style=VERDICT_STYLE[result.verdict]),
            _numbers(result),
            _details(result),
        )
    console.print(table)
    console.print(summary_line(outcome))
