"""Input validation: every problem names its field, before anything is written."""

from __future__ import annotations

import pytest

from coordinator.engine.model import BranchSpec
from coordinator.engine.validate import (
    check_branch_id,
    check_gid,
    check_headers,
    check_msg_branches,
    check_options,
    check_saga_branches,
    check_target,
    check_tcc_branch,
)
from meshkit.errors import InvalidArgument

T = "127.0.0.1:5000/pkg.v1.Svc/Do"


def field_of(exc: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return exc.value.field


@pytest.mark.parametrize("gid", ["", " x", "a b", "x" * 129, "-lead", "a/b", "é"])
def test_bad_gids(gid: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_gid(gid)
    assert field_of(bad) == "gid"


@pytest.mark.parametrize("gid", ["1", "a" * 128, "7283-abc_x.y:z", "1928374650192837465"])
def test_good_gids(gid: str) -> None:
    assert check_gid(gid) == gid


def test_branch_id_limit() -> None:
    assert check_branch_id("b" * 64, "branch.branch_id")
    with pytest.raises(InvalidArgument, match="64"):
        check_branch_id("b" * 65, "branch.branch_id")


@pytest.mark.parametrize(
    "target",
    [
        "",
        "host/pkg.S/M",
        "host:0/pkg.S/M",
        "host:70000/pkg.S/M",
        "host:1/pkg.S",
        "host:1/pkg.S/M/x",
        "h:1/1pkg.S/M",
    ],
)
def test_bad_targets(target: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_target(target, "branches[0].action")
    assert field_of(bad) == "branches[0].action"


@pytest.mark.parametrize(
    "target", [T, "localhost:1/S/M", "[::1]:443/a.b.C/D", "svc.ns.svc.cluster.local:80/x.Y/Z"]
)
def test_good_targets(target: str) -> None:
    assert check_target(target, "f") == target


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ((5, 0, 0, 0), "options.timeout_ms"),
        ((0, -1, 0, 0), "options.retry_interval_ms"),
        ((0, 0, 10_001, 0), "options.retry_limit"),
        ((0, 0, 0, 600_001), "options.request_timeout_ms"),
    ],
)
def test_option_ranges(values: tuple[int, int, int, int], field: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_options(*values)
    assert field_of(bad) == field


def test_zero_options_mean_defaults() -> None:
    check_options(0, 0, 0, 0)


@pytest.mark.parametrize("key", ["x-mesh-gid", "grpc-timeout", "Upper", "authorization", "k-bin", ""])
def test_reserved_or_bad_header_keys(key: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_headers({key: "v"})
    assert field_of(bad).startswith("options.headers")


def test_header_values_must_be_printable() -> None:
    with pytest.raises(InvalidArgument):
        check_headers({"x-tenant": "a\nb"})
    check_headers({"x-tenant": "acme", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})


def test_tcc_branch_needs_three_targets() -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_tcc_branch(BranchSpec("b1", action=T, confirm=T))
    assert field_of(bad) == "branch.cancel"


def test_tcc_branch_payload_limit() -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_tcc_branch(BranchSpec("b1", action=T, confirm=T, cancel=T, payload=b"x" * (64 * 1024 + 1)))
    assert field_of(bad) == "branch.payload"
    check_tcc_branch(BranchSpec("b1", action=T, confirm=T, cancel=T, payload=b"x" * (64 * 1024)))


def test_msg_branches_have_only_an_action() -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_msg_branches([BranchSpec("01", action=T), BranchSpec("02", action=T, confirm=T)])
    assert field_of(bad) == "branches[1].confirm"
    with pytest.raises(InvalidArgument) as reserved:
        check_msg_branches([BranchSpec("00", action=T)])
    assert field_of(reserved) == "branches[0].branch_id"


def test_item9_3_msg_branches_may_depend_on_each_other() -> None:
    check_msg_branches([BranchSpec("01", action=T), BranchSpec("02", action=T, depends_on=("01",))])
    check_msg_branches([BranchSpec("a", action=T, depends_on=("b", "c")), BranchSpec("b", action=T),
                        BranchSpec("c", action=T, depends_on=("b",))])  # fmt: skip


@pytest.mark.parametrize(
    ("branches", "field", "problem"),
    [
        ([BranchSpec("01", action=T, depends_on=("09",))], "branches[0].depends_on", "unknown branch '09'"),
        ([BranchSpec("01", action=T, depends_on=("00",))], "branches[0].depends_on", "unknown branch '00'"),
        ([BranchSpec("01", action=T, depends_on=("01",))], "branches[0].depends_on", "itself"),
        (
            [BranchSpec("01", action=T), BranchSpec("02", action=T, depends_on=("01", "01"))],
            "branches[1].depends_on",
            "duplicate dependency",
        ),
        (
            [BranchSpec("01", action=T, depends_on=("02",)), BranchSpec("02", action=T, depends_on=("01",))],
            "branches[0].depends_on",
            "cycle",
        ),
    ],
)
def test_item9_3_msg_bad_dependencies(branches: list[BranchSpec], field: str, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem) as bad:
        check_msg_branches(branches)
    assert field_of(bad) == field


def test_saga_dag_cycle_and_unknown_dependency() -> None:
    cycle = [BranchSpec("a", action=T, depends_on=("c",)), BranchSpec("b", action=T, depends_on=("a",)),
             BranchSpec("c", action=T, depends_on=("b",))]  # fmt: skip
    with pytest.raises(InvalidArgument, match="cycle") as bad:
        check_saga_branches(cycle, concurrent=True)
    assert field_of(bad) == "branches[0].depends_on"
    with pytest.raises(InvalidArgument, match="unknown branch 'z'"):
        check_saga_branches([BranchSpec("a", action=T, depends_on=("z",))], concurrent=True)
    with pytest.raises(InvalidArgument, match="itself"):
        check_saga_branches([BranchSpec("a", action=T, depends_on=("a",))], concurrent=True)


def test_saga_dependencies_need_concurrent() -> None:
    steps = [BranchSpec("a", action=T), BranchSpec("b", action=T, depends_on=("a",))]
    with pytest.raises(InvalidArgument) as bad:
        check_saga_branches(steps, concurrent=False)
    assert field_of(bad) == "branches[1].depends_on"
    check_saga_branches(steps, concurrent=True)


def test_saga_step_needs_an_action_and_no_confirm() -> None:
    with pytest.raises(InvalidArgument) as missing:
        check_saga_branches([BranchSpec("a")], concurrent=False)
    assert field_of(missing) == "branches[0].action"
    with pytest.raises(InvalidArgument) as confirm:
        check_saga_branches([BranchSpec("a", action=T, confirm=T)], concurrent=False)
    assert field_of(confirm) == "branches[0].confirm"


def test_too_many_branches() -> None:
    with pytest.raises(InvalidArgument, match="more than 100"):
        check_saga_branches([BranchSpec(f"s{i}", action=T) for i in range(101)], concurrent=False)
