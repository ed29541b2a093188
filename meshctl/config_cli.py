"""``meshctl config-sample``: print (or write, or check) the commented ``config.sample.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from console.config import ConsoleSettings
from coordinator.config import CoordinatorSettings
from meshctl.exitcodes import ExitCode
from meshkit.settings.config import MeshSettings
from meshkit.settings.sample import render_sample, sections_of
from order_svc.config import OrderSettings
from pay_svc.config import PaySettings
from points_svc.config import PointsSettings
from stock_svc.config import StockSettings

SAMPLE_FILE = Path("config.sample.yaml")

# Every process of the mesh and its settings class.
PROCESSES: dict[str, type[BaseModel]] = {
    "coordinator": CoordinatorSettings,
    "order_svc": OrderSettings,
    "stock_svc": StockSettings,
    "pay_svc": PaySettings,
    "points_svc": PointsSettings,
    "console": ConsoleSettings,
}


def sample_text() -> str:
    """The whole sample, rendered from the settings classes."""
    return render_sample(sections_of(PROCESSES, MeshSettings))


def config_sample(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
    check: Annotated[
        Path | None, typer.Option("--check", help="exit 1 when this file differs from a fresh rendering")
    ] = None,
) -> None:
    """Print the commented settings sample (every key, its default and what it does)."""
    text = sample_text()
    if check is not None:
        try:
            current = check.read_text()
        except OSError as error:
            typer.echo(f"error: cannot read {check}: {error.strerror}", err=True)
            raise typer.Exit(ExitCode.USAGE) from None
        if current != text:
            typer.echo(f"{check} is stale: run `meshctl config-sample -o {check}`", err=True)
            raise typer.Exit(ExitCode.FAILED)
        return
    if output is not None:
        output.write_text(text)
    else:
        typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    """Add ``config-sample`` to ``app``."""
    app.command("config-sample")(config_sample)
