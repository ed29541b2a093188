"""The issue 11 targets next to what a benchmark run measured: ok / missed (never used by a test).

A target is a measured number, a comparison (``>=``, ``<=`` or ``==``) and a threshold; a scenario that
did not run has no number and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Comparison = Literal[">=", "<=", "=="]
OK = "ok"
MISSED = "missed"
NOT_RUN = "not run"


def meets(value: float, comparison: Comparison, threshold: float) -> bool:
    """Whether ``value`` meets ``comparison threshold``."""
    if comparison == ">=":
        return value >= threshold
    if comparison == "<=":
        return value <= threshold
    return value == threshold


def number(value: float) -> str:
    """A figure as the summary prints it: thousands separated from 100 on, else two decimals."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


@dataclass(frozen=True, slots=True)
class Target:
    """One line of the issue's target table and its measured value (None: the scenario did not run)."""

    scenario: str
    comparison: Comparison
    threshold: float
    measured: float | None
    unit: str = ""

    @property
    def verdict(self) -> str:
        """``ok``, ``missed`` or ``not run``."""
        if self.measured is None:
            return NOT_RUN
        return OK if meets(self.measured, self.comparison, self.threshold) else MISSED

    def row(self) -> tuple[str, str, str, str]:
        """``(scenario, target, measured, verdict)`` as the summary table prints them."""
        unit = f" {self.unit}" if self.unit else ""
        measured = "-" if self.measured is None else f"{number(self.measured)}{unit}"
        return (self.scenario, f"{self.comparison} {number(self.threshold)}{unit}", measured, self.verdict)
