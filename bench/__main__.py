"""``python -m bench``: run every benchmark; ``python -m bench NAME [options]`` runs one.

Each benchmark is a module of this package with ``main(argv) -> int``; register it in ``BENCHES``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

# name -> module
BENCHES: dict[str, str] = {
    "place_order": "bench.place_order",
    "tcc_overhead": "bench.tcc_overhead",
    "admin_scale": "bench.admin_scale",
    "rpc_overhead": "bench.rpc_overhead",
    "branch_ops": "bench.branch_ops",
}
# Left out of the default run (several minutes each): run them by name.
SLOW: frozenset[str] = frozenset({"admin_scale"})

USAGE = (
    "usage: python -m bench [NAME [options]]\n"
    "  no NAME: run every benchmark with its defaults, except the slow ones"
    f" ({', '.join(sorted(SLOW))}: run them by name)\n"
    f"  NAME: one of {', '.join(BENCHES)} (python -m bench NAME --help for its options)"
)


def run_one(name: str, argv: Sequence[str]) -> int:
    """Import the benchmark ``name`` and run its ``main(argv)``."""
    module = importlib.import_module(BENCHES[name])
    entry = cast(Callable[[Sequence[str]], int], module.main)
    return entry(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch; the exit code is the worst of the benchmarks run."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not args:
        codes = []
        for name in (n for n in BENCHES if n not in SLOW):
            print(f"\n=== bench {name}", flush=True)
            codes.append(run_one(name, []))
        return max(codes, default=0)
    name, rest = args[0], args[1:]
    if name not in BENCHES:
        print(f"unknown benchmark {name!r}\n{USAGE}", file=sys.stderr)
        return 2
    return run_one(name, rest)


if __name__ == "__main__":
    sys.exit(main())
