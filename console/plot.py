"""The overview's plot: transactions finished per minute (succeeded and failed) as SVG geometry.

Pure functions; the template draws the bars. Buckets come from the finished transactions the Admin
API lists (their ``finished_at``), so the plot needs no state in the console and survives restarts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MINUTE_MS = 60_000
WIDTH = 600
HEIGHT = 160
PAD_LEFT = 36
PAD_BOTTOM = 18
PAD_TOP = 8


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of the plot (SVG user units) with what it counts."""

    x: float
    y: float
    width: float
    height: float
    kind: str  # "ok" or "failed"
    count: int
    label: str


@dataclass(frozen=True, slots=True)
class Plot:
    """Everything the template needs to draw the plot."""

    bars: list[Bar]
    peak: int
    minutes: int
    succeeded: int
    failed: int
    capped: bool
    width: int = WIDTH
    height: int = HEIGHT
    left: int = PAD_LEFT
    bottom: int = HEIGHT - PAD_BOTTOM
    top: int = PAD_TOP


def buckets(finished_ms: Iterable[int], now_ms: int, minutes: int) -> list[int]:
    """Counts per minute, oldest first; the last bucket is the current minute."""
    counts = [0] * minutes
    end = (now_ms // MINUTE_MS + 1) * MINUTE_MS
    start = end - minutes * MINUTE_MS
    for ms in finished_ms:
        if start <= ms < end:
            counts[(ms - start) // MINUTE_MS] += 1
    return counts


def plot(succeeded: list[int], failed: list[int], *, capped: bool = False) -> Plot:
    """Side-by-side bars per minute: succeeded (``ok``) and failed."""
    minutes = len(succeeded)
    peak = max([1, *succeeded, *failed])
    inner_w = WIDTH - PAD_LEFT - 4
    inner_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = inner_w / max(minutes, 1)
    bar_w = max(slot * 0.4, 1.0)
    bars: list[Bar] = []
    for i, (ok, bad) in enumerate(zip(succeeded, failed, strict=True)):
        ago = minutes - 1 - i
        label = "this minute" if ago == 0 else f"{ago} min ago"
        for j, (kind, count) in enumerate((("ok", ok), ("failed", bad))):
            height = inner_h * count / peak
            x = PAD_LEFT + i * slot + slot * 0.1 + j * bar_w
            bars.append(
                Bar(
                    round(x, 1),
                    round(PAD_TOP + inner_h - height, 1),
                    round(bar_w, 1),
                    round(height, 1),
                    kind,
                    count,
                    label,
                )
            )
    return Plot(bars, peak, minutes, sum(succeeded), sum(failed), capped)
