"""Regenerates the committed protobuf code in ``meshpb/`` from ``protos/``.

Usage: ``python -m devtools.protogen PROTO_ROOT OUT_ROOT``. It writes ``*_pb2.py``, ``*_pb2.pyi``
(mypy-protobuf), ``*_pb2_grpc.py`` and ``*_pb2_grpc.pyi`` plus the package ``__init__.py`` files.
The same function backs the test that fails when the committed code is stale.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc_tools

_PLUGINS = ("protoc-gen-mypy", "protoc-gen-mypy_grpc")


def proto_files(proto_root: Path) -> list[Path]:
    """Every ``.proto`` below ``proto_root``, sorted for a stable output."""
    return sorted(proto_root.rglob("*.proto"))


def _plugin_path(name: str) -> str:
    """Locate a protoc plugin installed beside this interpreter (the venv's bin dir), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"protoc plugin {name!r} not found: install the dev extras (mypy-protobuf)")
    return found


def generate(proto_root: Path, out_root: Path) -> list[Path]:
    """Run protoc over every proto file into ``out_root``; return the generated files."""
    files = proto_files(proto_root)
    if not files:
        raise SystemExit(f"no .proto files under {proto_root}")
    include = Path(grpc_tools.__file__).parent / "_proto"
    plugin_args = [f"--plugin={name}={_plugin_path(name)}" for name in _PLUGINS]
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{include}",
        *plugin_args,
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *(str(f.relative_to(proto_root)) for f in files),
    ]
    subprocess.run(cmd, check=True)
    generated: list[Path] = []
    for proto in files:
        rel = proto.relative_to(proto_root).with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            generated.append(out_root / rel.parent / f"{rel.name}{suffix}")
        _ensure_packages(out_root, rel.parent)
    return generated


def _ensure_packages(out_root: Path, package_dir: Path) -> None:
    """Create ``__init__.py`` (and ``py.typed`` at the top) along ``package_dir``."""
    parts = package_dir.parts
    for depth in range(1, len(parts) + 1):
        init = out_root.joinpath(*parts[:depth], "__init__.py")
        if not init.exists():
            init.write_text('"""Generated protobuf package (see protos/); do not edit."""\n')
    (out_root / parts[0] / "py.typed").touch()


def main(argv: list[str]) -> None:
    """Entry point: ``python -m devtools.protogen PROTO_ROOT OUT_ROOT``."""
    if len(argv) != 2:
        raise SystemExit("usage: python -m devtools.protogen PROTO_ROOT OUT_ROOT")
    generate(Path(argv[0]), Path(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
