"""``meshctl demo`` end to end (what ``make demo`` runs and CI guards): every step and the audit pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from meshctl.stack import stackfile
from meshctl.stack.launcher import free_base_port

SCENES = [
    "Seed the shop",
    "A multi-merchant order paid with points",
    "An order paid through the external gateway",
    "An order cancelled after payment",
    "An order whose stock runs out",
    "A duplicate PlaceOrder retry",
    "A late gateway callback after cancel",
]


@pytest.mark.timeout(420)
def test_meshctl_demo_tells_the_whole_story_and_the_audit_passes(tmp_path: Path) -> None:
    data_dir = tmp_path / "mesh"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshctl",
            "demo",
            "--base-port",
            str(free_base_port()),
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    doc = json.loads(done.stdout)  # stdout holds exactly one JSON document
    failed = [
        (
            s["title"],
            [e for e in s["events"] if e["kind"] == "error" or (e["kind"] == "check" and not e["ok"])],
        )
        for s in doc.get("steps", [])
        if not s["ok"]
    ]
    assert done.returncode == 0, f"failed steps: {failed}\naudit: {doc.get('audit')}\n{done.stderr[-3000:]}"
    assert doc["ok"] is True
    assert [s["title"] for s in doc["steps"]] == SCENES
    assert doc["audit"]["all_pass"] is True
    assert doc["stack_stopped"] is True
    assert stackfile.load(data_dir) is None
    views = [e for s in doc["steps"][1:] for e in s["events"] if e["kind"] == "transactions"]
    assert len(views) == len(SCENES) - 1
    modes = {tx["mode"] for view in views for tx in view["transactions"]}
    assert {"TCC", "MSG"} <= modes
