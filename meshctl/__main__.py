"""``meshctl``: the one command-line tool of saga-mesh (local stack, demo; admin, audit, bench to come).

Each command group lives in its own module with a ``register(app)`` function.
"""

from __future__ import annotations

import typer

from meshctl import config_cli
from meshctl.audit import cli as audit_cli
from meshctl.demo import cli as demo_cli
from meshctl.stack import cli as stack_cli
from meshctl.tx import cli as tx_cli


def build_app() -> typer.Typer:
    """The typer application with every command group registered."""
    app = typer.Typer(
        name="meshctl",
        help="saga-mesh: run the local stack, the demo, and administer transactions.",
        no_args_is_help=True,
        add_completion=False,
    )
    stack_cli.register(app)
    demo_cli.register(app)
    audit_cli.register(app)
    tx_cli.register(app)
    config_cli.register(app)
    return app


def main() -> None:
    """Entry point of the ``meshctl`` script."""
    build_app()()


if __name__ == "__main__":
    main()
