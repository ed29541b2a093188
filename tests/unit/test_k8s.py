"""The Kubernetes manifests: complete, consistent with the ports and settings of the processes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from meshctl.config_cli import PROCESSES
from meshctl.stack import layout
from meshkit.settings.config import load_settings

K8S = Path(__file__).resolve().parents[2] / "k8s"
# The oldest Kubernetes the manifests support (StatefulSet pod-index label, gRPC probes, PDB policy/v1).
KUBERNETES_VERSION = "1.30.0"
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


def render(directory: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of ``directory`` (a copy, with each ``*.env.example`` as its ``*.env``)."""
    if shutil.which("kubectl") is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is needed to render the overlays in CI")
        pytest.skip("kubectl is not installed")
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work)
    target = work / directory.relative_to(K8S)
    for example in target.glob("*.env.example"):
        example.with_suffix("").write_text(example.read_text())
    built = subprocess.run(
        ["kubectl", "kustomize", str(target)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def workloads_of(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "StatefulSet"}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_kustomize_builds(directory: Path, tmp_path: Path) -> None:
    kinds = [doc["kind"] for doc in render(directory, tmp_path)]
    assert kinds.count("StatefulSet") == len(WORKLOADS)
    assert kinds.count("PodDisruptionBudget") == len(WORKLOADS)
    assert kinds.count("NetworkPolicy") == len(WORKLOADS) + 1  # and the console's


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_every_rendered_object_passes_strict_schema_validation(directory: Path, tmp_path: Path) -> None:
    for obj in render(directory, tmp_path):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_pods_meet_pod_security_restricted(directory: Path, tmp_path: Path) -> None:
    for name, workload in workloads_of(render(directory, tmp_path)).items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"] + pod.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["capabilities"] == {"drop": ["ALL"]}, name
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", "/var/lib/saga-mesh"} <= mounts, name  # the writable places


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_rollout_migrates_first_and_drains_within_the_grace_period(directory: Path, tmp_path: Path) -> None:
    objects = render(directory, tmp_path)
    config = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("mesh-config")
    )
    settings = yaml.safe_load(config["data"]["mesh.yaml"])
    assert settings["db"]["migrate_on_start"] is False
    server = settings["server"]
    assert server["drain_seconds"] > 0
    for name, workload in workloads_of(objects).items():
        pod = workload["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        assert init["command"][:4] == ["python", "-m", WORKLOADS[name], "migrate"]
        container = pod["containers"][0]
        assert container["startupProbe"]["grpc"]["port"] == container["readinessProbe"]["grpc"]["port"]
        assert pod["terminationGracePeriodSeconds"] > server["drain_seconds"] + server["grace_seconds"]
        keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_each_process_has_its_own_disruption_budget_and_a_headless_service(
    directory: Path, tmp_path: Path
) -> None:
    objects = render(directory, tmp_path)
    budgets = {
        o["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for o in objects
        if o["kind"] == "PodDisruptionBudget"
    }
    assert budgets == set(WORKLOADS)
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    for name in WORKLOADS:
        assert services[name]["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_only_mesh_pods_and_operators_reach_branch_ports(directory: Path, tmp_path: Path) -> None:
    objects = render(directory, tmp_path)
    mesh_pods = {o["metadata"]["name"]: o for o in objects if o["kind"] == "StatefulSet"}
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    for name, workload in mesh_pods.items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "saga-mesh", name  # what the policies admit
        grpc_rule = next(
            rule for rule in policies[name]["spec"]["ingress"] if rule["ports"][0]["port"] == "grpc"
        )
        admitted = [peer["podSelector"]["matchLabels"] for peer in grpc_rule["from"]]
        assert all("namespaceSelector" not in peer for peer in grpc_rule["from"]), name
        expected = [{"app.kubernetes.io/part-of": "saga-mesh"}, {"saga-mesh.io/access": "operator"}]
        if name in ("order", "pay"):  # public RPCs on the same port; branch RPCs need the mesh secret
            expected.append({"saga-mesh.io/access": "client"})
        assert admitted == expected, name


def test_prod_replicates_streams_authenticates_to_nats_and_autoscales_services(tmp_path: Path) -> None:
    objects = render(K8S / "overlays" / "prod", tmp_path)
    config = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("mesh-config")
    )
    nats = yaml.safe_load(config["data"]["mesh.yaml"])["nats"]
    assert nats["stream_replicas"] == 3
    for name, workload in workloads_of(objects).items():
        env = {e["name"] for e in workload["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert {"MESH_NATS__USER", "MESH_NATS__PASSWORD"} <= env, name
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    assert scaled == {"order", "stock", "pay", "points"}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_console_serves_http_to_operators_only_with_a_restricted_pod(directory: Path, tmp_path: Path) -> None:
    objects = render(directory, tmp_path)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "console"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"][:3] == ["python", "-m", "console"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = {e["name"]: e for e in container["env"]}
    assert env["MESH_ADMIN__TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "admin-token"
    assert "secretKeyRef" in env["MESH_CONSOLE__SESSION_SECRET"]["valueFrom"]
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "console")
    (rule,) = policy["spec"]["ingress"]
    assert [peer["podSelector"]["matchLabels"] for peer in rule["from"]] == [
        {"saga-mesh.io/access": "operator"}
    ]


def secret_keys_referenced(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Every (Secret name, key) a container's environment takes a value from."""
    found: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("secretKeyRef")
            if isinstance(ref, dict):
                found.add((ref["name"], ref["key"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(objects)
    return found


@pytest.mark.parametrize("directory", KUSTOMIZATIONS[1:], ids=lambda p: p.name)
def test_every_secret_key_a_pod_reads_is_in_the_overlays_secret(directory: Path, tmp_path: Path) -> None:
    objects = render(directory, tmp_path)
    provided = {
        (o["metadata"]["name"], key)
        for o in objects
        if o["kind"] == "Secret"
        for key in (o.get("data") or {}) | (o.get("stringData") or {})
    }
    # kustomize appends a content hash to generated Secret names and rewrites the references to match
    missing = secret_keys_referenced(objects) - provided
    assert not missing, f"{directory.name}: pods read secret keys no Secret provides: {sorted(missing)}"
