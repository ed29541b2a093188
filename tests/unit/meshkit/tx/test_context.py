"""Transaction context <-> x-mesh-* metadata: round trip, and bad metadata named by key."""

from __future__ import annotations

import pytest

from meshkit.errors import InvalidArgument
from meshkit.tx.context import (
    BRANCH_KEY,
    GID_KEY,
    MAX_BRANCH_LEN,
    MAX_GID_LEN,
    MODE_KEY,
    OP_KEY,
    OPS_OF_MODE,
    ORIGIN_OF,
    Op,
    TxContext,
    TxMode,
    current_tx,
    from_metadata,
    require_context,
)

VALID = {GID_KEY: "g-1", BRANCH_KEY: "01", OP_KEY: "try", MODE_KEY: "tcc"}


def _with(**changes: str | None) -> list[tuple[str, str]]:
    """VALID metadata with keys replaced (value) or removed (None); keys given with '_' for '-'."""
    md = dict(VALID)
    for key, value in changes.items():
        real = key.replace("_", "-")
        if value is None:
            md.pop(real, None)
        else:
            md[real] = value
    return list(md.items())


@pytest.mark.parametrize(
    ("op", "mode"),
    [(op, mode) for mode, ops in OPS_OF_MODE.items() for op in sorted(ops)],
)
def test_round_trip_through_metadata(op: Op, mode: TxMode) -> None:
    ctx = TxContext(gid="7263547236457", branch_id="02", op=op, mode=mode)
    assert from_metadata(ctx.to_metadata()) == ctx
    assert require_context(ctx.to_metadata()) == ctx


def test_metadata_keys_are_the_contract() -> None:
    ctx = TxContext(gid="g", branch_id="b", op=Op.CANCEL, mode=TxMode.TCC)
    assert dict(ctx.to_metadata()) == {
        "x-mesh-gid": "g",
        "x-mesh-branch": "b",
        "x-mesh-op": "cancel",
        "x-mesh-mode": "tcc",
    }


def test_reads_mappings_bytes_values_upper_case_keys_and_ignores_other_keys() -> None:
    md: list[tuple[str, str | bytes]] = [
        ("X-Mesh-Gid", b"g-2"),
        ("x-mesh-branch", b"03"),
        ("x-mesh-op", "compensate"),
        ("x-mesh-mode", "saga"),
        ("traceparent", "00-abc-def-01"),
        ("user-agent", "grpc-python"),
    ]
    assert from_metadata(md) == TxContext("g-2", "03", Op.COMPENSATE, TxMode.SAGA)
    assert from_metadata(dict(VALID)) == TxContext("g-1", "01", Op.TRY, TxMode.TCC)


@pytest.mark.parametrize("metadata", [None, [], [("user-agent", "x")], {}])
def test_no_gid_means_no_context(metadata: list[tuple[str, str]] | dict[str, str] | None) -> None:
    assert from_metadata(metadata) is None


def test_require_context_without_gid_names_the_gid_key() -> None:
    with pytest.raises(InvalidArgument) as info:
        require_context([("user-agent", "x")])
    assert info.value.field == GID_KEY


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"x_mesh_gid": ""}, GID_KEY),
        ({"x_mesh_gid": "has space"}, GID_KEY),
        ({"x_mesh_gid": "g" * (MAX_GID_LEN + 1)}, GID_KEY),
        ({"x_mesh_gid": "tab\there"}, GID_KEY),
        ({"x_mesh_branch": None}, BRANCH_KEY),
        ({"x_mesh_branch": ""}, BRANCH_KEY),
        ({"x_mesh_branch": "b" * (MAX_BRANCH_LEN + 1)}, BRANCH_KEY),
        ({"x_mesh_op": None}, OP_KEY),
        ({"x_mesh_op": "TRY!"}, OP_KEY),
        ({"x_mesh_op": "commit"}, OP_KEY),
        ({"x_mesh_mode": None}, MODE_KEY),
        ({"x_mesh_mode": "xa"}, MODE_KEY),
    ],
    ids=[
        "gid-empty",
        "gid-space",
        "gid-too-long",
        "gid-control-char",
        "branch-missing",
        "branch-empty",
        "branch-too-long",
        "op-missing",
        "op-garbage",
        "op-unknown",
        "mode-missing",
        "mode-unknown",
    ],
)
def test_invalid_metadata_names_the_key(changes: dict[str, str | None], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        from_metadata(_with(**changes))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_limits_are_inclusive() -> None:
    md = _with(x_mesh_gid="g" * MAX_GID_LEN, x_mesh_branch="b" * MAX_BRANCH_LEN)
    ctx = from_metadata(md)
    assert ctx is not None
    assert len(ctx.gid) == MAX_GID_LEN
    assert len(ctx.branch_id) == MAX_BRANCH_LEN


def test_rollback_ops_and_their_origins() -> None:
    assert ORIGIN_OF == {Op.CANCEL: Op.TRY, Op.COMPENSATE: Op.ACTION}
    rollbacks = {op for op in Op if TxContext("g", "b", op, TxMode.TCC).is_rollback}
    assert rollbacks == {Op.CANCEL, Op.COMPENSATE}


async def test_current_tx_defaults_to_none_and_resets() -> None:
    assert current_tx.get() is None
    ctx = TxContext("g-3", "01", Op.ACTION, TxMode.SAGA)
    token = current_tx.set(ctx)
    try:
        assert current_tx.get() == ctx
    finally:
        current_tx.reset(token)
    assert current_tx.get() is None


# --------------------------------------------------------------------------- issue 15 item 5


def test_issue15_item5_every_mode_and_op_pair_is_either_valid_or_refused_naming_the_op() -> None:
    valid = {(TxMode.TCC, o) for o in (Op.TRY, Op.CONFIRM, Op.CANCEL)}
    valid |= {(TxMode.SAGA, Op.ACTION), (TxMode.SAGA, Op.COMPENSATE)}
    valid |= {(TxMode.MSG, Op.MSG), (TxMode.MSG, Op.ACTION)}
    for mode in TxMode:
        for op in Op:
            md = _with(x_mesh_op=op.value, x_mesh_mode=mode.value)
            if (mode, op) in valid:
                assert from_metadata(md) == TxContext("g-1", "01", op, mode)
                continue
            with pytest.raises(InvalidArgument) as info:
                from_metadata(md)
            assert info.value.field == OP_KEY, (mode, op)
            assert f"a {mode.value} transaction" in info.value.message


@pytest.mark.parametrize("key", [GID_KEY, BRANCH_KEY, OP_KEY, MODE_KEY])
def test_issue15_item5_a_context_key_given_twice_is_refused_not_last_one_wins(key: str) -> None:
    second = {GID_KEY: "g-2", BRANCH_KEY: "02", OP_KEY: "cancel", MODE_KEY: "tcc"}[key]
    md = [*_with(), (key, second)]
    with pytest.raises(InvalidArgument) as info:
        from_metadata(md)
    assert (info.value.field, info.value.message) == (key, "given more than once")


def test_issue15_item5_duplicate_keys_differing_only_in_case_are_refused() -> None:
    with pytest.raises(InvalidArgument) as info:
        from_metadata([*_with(), ("X-Mesh-Gid", "g-1")])
    assert info.value.field == GID_KEY


@pytest.mark.parametrize("value", [b"\xff\xfe", b"\xc3\x28", b"g-1"])
def test_issue15_item5_a_binary_context_key_is_refused_naming_the_key(value: bytes) -> None:
    md: list[tuple[str, str | bytes]] = [*_with(), ("x-mesh-gid-bin", value)]
    with pytest.raises(InvalidArgument) as info:
        from_metadata(md)
    assert info.value.field == GID_KEY
    assert "binary" in info.value.message


def test_issue15_item5_a_non_utf8_value_of_a_context_key_is_invalid_argument() -> None:
    md: list[tuple[str, str | bytes]] = [*_with(x_mesh_branch=None), (BRANCH_KEY, b"\xff")]
    with pytest.raises(InvalidArgument) as info:
        from_metadata(md)
    assert (info.value.field, info.value.message) == (BRANCH_KEY, "not valid UTF-8")


def test_issue15_item5_non_utf8_binary_metadata_of_others_is_not_read() -> None:
    md: list[tuple[str, str | bytes]] = [
        *_with(),
        ("trace-bin", b"\xff\xfe"),
        ("grpc-trace-bin", b"\x00\xff"),
        ("authorization-bin", b"\xc3\x28"),
    ]
    assert from_metadata(md) == TxContext("g-1", "01", Op.TRY, TxMode.TCC)
    assert from_metadata([("trace-bin", b"\xff")]) is None
