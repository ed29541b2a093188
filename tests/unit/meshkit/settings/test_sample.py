"""``config.sample.yaml``: current with the settings classes, every key commented, loadable as it is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshctl.config_cli import PROCESSES, sample_text
from meshkit.settings.config import ConfigError, load_settings
from order_svc.config import OrderSettings

ROOT = Path(__file__).resolve().parents[4]
SAMPLE = ROOT / "config.sample.yaml"


@pytest.fixture(autouse=True)
def no_mesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("MESH_")]:
        monkeypatch.delenv(key)


def test_committed_sample_matches_the_settings_classes() -> None:
    assert SAMPLE.read_text() == sample_text(), "stale: run `meshctl config-sample -o config.sample.yaml`"


def test_every_key_of_the_sample_has_a_comment() -> None:
    lines = SAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        is_key = line.startswith("  ") and not line.lstrip().startswith("#")
        if is_key:
            assert lines[number - 1].lstrip().startswith("#"), f"line {number + 1} has no comment: {line}"


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_loading_the_sample_as_it_is_gives_each_process_its_defaults(process: str) -> None:
    settings_cls = PROCESSES[process]
    assert load_settings(settings_cls, SAMPLE) == settings_cls()  # type: ignore[arg-type]


def test_a_process_skips_other_processes_sections_but_not_a_misspelt_one(tmp_path: Path) -> None:
    shared = tmp_path / "mesh.yaml"
    shared.write_text("coordinator:\n  retry_limit: 3\norder:\n  max_items: 7\n")
    assert load_settings(OrderSettings, shared).order.max_items == 7
    typo = tmp_path / "typo.yaml"
    typo.write_text("ordr:\n  max_items: 7\n")
    with pytest.raises(ConfigError, match="ordr"):
        load_settings(OrderSettings, typo)
