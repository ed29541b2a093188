"""The committed generated code in meshpb/ must match a fresh `make protos`."""

from __future__ import annotations

import filecmp
from pathlib import Path

from devtools.protogen import generate

ROOT = Path(__file__).resolve().parents[2]


def test_committed_protobuf_code_matches_a_fresh_generation(tmp_path: Path) -> None:
    generated = generate(ROOT / "protos", tmp_path)
    assert generated, "no files generated"
    stale = [
        str(path.relative_to(tmp_path))
        for path in generated
        if not filecmp.cmp(path, ROOT / path.relative_to(tmp_path), shallow=False)
    ]
    assert not stale, f"meshpb/ is stale, run `make protos`: {stale}"


def test_every_generated_file_is_committed_under_meshpb(tmp_path: Path) -> None:
    generated = {p.relative_to(tmp_path) for p in generate(ROOT / "protos", tmp_path)}
    committed = {
        p.relative_to(ROOT)
        for p in (ROOT / "meshpb").rglob("*")
        if p.suffix in (".py", ".pyi") and p.name != "__init__.py"
    }
    assert committed == generated, f"unexpected or missing generated files: {committed ^ generated}"
