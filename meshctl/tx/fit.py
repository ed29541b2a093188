"""Which columns of a table fit a terminal width: gids whole, the rest shortened or dropped.

Tables are drawn without outer edges, with one space of padding on each side of a cell and a blank
divider, so adjacent columns are :data:`GAP` characters apart and a table of columns ``w1..wn`` is
``sum(w) + GAP*(n-1)`` wide.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.table import Table

GAP = 3
MIN_FLEX = 12  # narrower than this, the flexible (error/detail) column is dropped instead


@dataclass(frozen=True, slots=True)
class Col:
    """A column: its header, its cells (plain text, for measuring), and how soon it is dropped.

    ``drop`` 0 is never dropped; higher goes first. ``flex`` marks the one column that takes what
    width is left and is cut to it.
    """

    header: str
    cells: tuple[str, ...]
    drop: int = 1
    flex: bool = False

    @property
    def width(self) -> int:
        """The width its header and widest cell need."""
        return max((cell_len(c) for c in (self.header, *self.cells)), default=0)


def fit(cols: list[Col], width: int) -> dict[str, int]:
    """The headers of the columns kept for ``width`` -> their width (the flexible one gets the rest).

    Columns are dropped highest ``drop`` first until the rest fit and the flexible column, if still
    there, has at least :data:`MIN_FLEX` characters (or all it needs).
    """
    kept = list(cols)
    while True:
        flex = next((c for c in kept if c.flex), None)
        used = sum(c.width for c in kept if not c.flex) + GAP * (len(kept) - 1)
        room = width - used
        need = min(MIN_FLEX, flex.width) if flex is not None else 0
        droppable = [c for c in kept if c.drop]
        if room >= need or not droppable:
            return {c.header: (max(min(c.width, room), 1) if c.flex else c.width) for c in kept}
        kept.remove(max(droppable, key=lambda c: c.drop))


def table(title: str) -> Table:
    """An empty table drawn the way :func:`fit` counts."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
