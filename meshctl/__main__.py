"""``meshctl``: the one command-line tool of saga-mesh (local stack, demo; admin, audit, bench to come).

Each command group lives in its own module with a ``register(app)`` function.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from meshctl import config_cli, console_cli, exitcodes
from meshctl.audit import cli as audit_cli
from meshctl.demo import cli as demo_cli
from meshctl.stack import cli as stack_cli
from meshctl.tx import cli as tx_cli

DISTRIBUTION = "saga-mesh"


def installed_version() -> str:
    """The installed saga-mesh version (``unknown`` when run from a tree that is not installed)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        print(f"meshctl {installed_version()}")
        raise typer.Exit(exitcodes.ExitCode.OK)


def _root(
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """saga-mesh: run the local stack, the demo, audit the mesh and administer transactions."""


def build_app() -> typer.Typer:
    """The typer application with every command group registered."""
    app = typer.Typer(
        name="meshctl",
        no_args_is_help=True,
        add_completion=False,
        epilog=exitcodes.epilog(),
    )
    app.callback()(_root)
    stack_cli.register(app)
    demo_cli.register(app)
    audit_cli.register(app)
    tx_cli.register(app)
    config_cli.register(app)
    console_cli.register(app)
    return app


def main() -> None:
    """Entry point of the ``meshctl`` script."""
    build_app()()


if __name__ == "__main__":
    main()
