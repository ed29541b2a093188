"""The Kubernetes manifests: complete, consistent with the ports and settings of the processes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshctl.config_cli import PROCESSES
from meshctl.stack import layout
from meshkit.runtime.config import load_settings

K8S = Path(__file__).resolve().parents[2] / "k8s"
KUSTOMIZATIONS = [K8S / "base", K8S / "overlays" / "dev", K8S / "overlays" / "prod"]
# StatefulSet name -> the process it runs
WORKLOADS = {
    "coordinator": "coordinator",
    "order": "order_svc",
    "stock": "stock_svc",
    "pay": "pay_svc",
    "points": "points_svc",
}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def base_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects = {}
    for name in WORKLOADS:
        for doc in documents(K8S / "base" / f"{name}.yaml"):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


@pytest.fixture(autouse=True)
def no_mesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("MESH_")]:
        monkeypatch.delenv(key)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_every_file_a_kustomization_names_exists(directory: Path) -> None:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    named = [r for r in kustomization.get("resources", []) if not r.startswith("..")]
    for generator in kustomization.get("configMapGenerator", []) + kustomization.get("secretGenerator", []):
        named += generator.get("files", [])
        named += [f"{env}.example" for env in generator.get("envs", [])]
    for name in named:
        assert (directory / name).is_file(), f"{directory.name}: {name} is missing"


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_each_workload_serves_its_documented_port_with_grpc_probes(name: str) -> None:
    objects = base_objects()
    workload, service = objects[("StatefulSet", name)], objects[("Service", name)]
    spec = next(s for s in layout.SERVICES if s.name == WORKLOADS[name])
    port = spec.port(layout.DEFAULT_BASE_PORT)
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["MESH_SERVER__PORT"]["value"] == str(port)
    assert {"name": "grpc", "containerPort": port} in container["ports"]
    assert container["readinessProbe"]["grpc"]["port"] == port
    assert container["command"][:3] == ["python", "-m", WORKLOADS[name]]
    assert env["MESH_DB__URL"]["valueFrom"]["secretKeyRef"] == {"name": "mesh-db", "key": name}
    assert any(p["port"] == port and p["targetPort"] == "grpc" for p in service["spec"]["ports"])
    peers = yaml.safe_load((K8S / "base" / "mesh.yaml").read_text())["peers"]
    assert f"{name}:{port}" in peers.values()


@pytest.mark.parametrize(
    "config", [K8S / "base" / "mesh.yaml", K8S / "overlays" / "prod" / "mesh.yaml"], ids=["base", "prod"]
)
@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_the_shared_settings_file_is_valid_for_every_process(config: Path, process: str) -> None:
    settings = load_settings(PROCESSES[process], config)  # type: ignore[type-var]
    assert settings.server.host == "0.0.0.0"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_kustomize_builds(directory: Path, tmp_path: Path) -> None:
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work)
    target = work / directory.relative_to(K8S)
    for example in target.glob("*.env.example"):
        example.with_suffix("").write_text(example.read_text())
    built = subprocess.run(
        ["kubectl", "kustomize", str(target)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(built.stdout) if doc]
    assert kinds.count("StatefulSet") == len(WORKLOADS)
