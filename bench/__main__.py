"""``python -m bench``: the overview of every scenario; ``python -m bench NAME [options]`` runs one.

With no name it runs :mod:`bench.overview` with its defaults: the physical references, TCC / saga / MSG
direct and through the coordinator, PlaceOrder and a flash-sale burst on SQLite and MariaDB, and the
issue 11 targets next to the measured values. Each benchmark is a module of this package with
``main(argv) -> int``; register it in ``BENCHES``. The ``SLOW`` ones (minutes each) are never part of
the overview: run them by name.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

# name -> module
BENCHES: dict[str, str] = {
    "overview": "bench.overview",
    "participant_unit": "bench.participant_unit",
    "msg_overhead": "bench.msg_overhead",
    "place_order": "bench.place_order",
    "tcc_overhead": "bench.tcc_overhead",
    "admin_scale": "bench.admin_scale",
    "rpc_overhead": "bench.rpc_overhead",
    "branch_ops": "bench.branch_ops",
    "timers": "bench.timers",
}
# Left out of the default run (several minutes each): run them by name.
SLOW: frozenset[str] = frozenset({"admin_scale", "timers"})

DEFAULT = "overview"

USAGE = (
    "usage: python -m bench [NAME [options]]\n"
    "  no NAME: the overview (references, every scenario, the targets); not the slow ones"
    f" ({', '.join(sorted(SLOW))}: run them by name)\n"
    f"  NAME: one of {', '.join(BENCHES)} (python -m bench NAME --help for its options)"
)


def run_one(name: str, argv: Sequence[str]) -> int:
    """Import the benchmark ``name`` and run its ``main(argv)``."""
    module = importlib.import_module(BENCHES[name])
    entry = cast(Callable[[Sequence[str]], int], module.main)
    return entry(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch; the exit code is the benchmark's."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not args:
        return run_one(DEFAULT, [])
    name, rest = args[0], args[1:]
    if name not in BENCHES:
        print(f"unknown benchmark {name!r}\n{USAGE}", file=sys.stderr)
        return 2
    return run_one(name, rest)


if __name__ == "__main__":
    sys.exit(main())
