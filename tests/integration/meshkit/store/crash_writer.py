"""A writer the crash test kills mid-group (``python -m tests.integration.meshkit.store.crash_writer``).

It commits the row ``committed``, then runs one group of three units: ``lost-1`` and ``lost-2`` insert
their rows, the third inserts ``lost-3``, creates ``MARKER`` and hangs before the group's COMMIT.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

from meshkit.store import Conn, StoreRunner, Unit

INSERT = "INSERT INTO item (name, n) VALUES (?, 1)"


def insert(name: str) -> Unit[int]:
    """A unit that inserts the row ``name``."""
    return lambda conn: conn.execute(INSERT, (name,))


async def main(db: str, marker: Path) -> None:
    """Commit one row, then hang inside a group of three units until killed."""
    runner = StoreRunner.open(f"sqlite:///{db}")
    await runner.run(insert("committed"))
    gate = threading.Event()

    def wait_for_gate(conn: Conn) -> None:
        gate.wait()

    def insert_then_hang(conn: Conn) -> None:
        conn.execute(INSERT, ("lost-3",))
        marker.write_text("inside")
        while True:
            time.sleep(1)

    blocker = asyncio.ensure_future(runner.run(wait_for_gate))
    group = [
        asyncio.ensure_future(runner.run(u)) for u in (insert("lost-1"), insert("lost-2"), insert_then_hang)
    ]
    await asyncio.sleep(0)  # all three queued behind the blocker: they form the next group
    gate.set()
    await blocker
    await asyncio.gather(*group)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
