"""Input validation of coordinator commands: every problem is an ``InvalidArgument`` naming the field.

Runs before any state changes. Field names follow the protobuf request (``branches[2].action``,
``options.retry_limit``), so a caller can find what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from coordinator.engine.model import CHECK_BACK_BRANCH, BranchSpec, Mode
from meshkit.errors import InvalidArgument
from meshkit.settings.config import MAX_REQUEST_BYTES
from meshkit.tx.target import TargetError, parse_target

MAX_GID_LEN = 128
MAX_BRANCH_ID_LEN = 64
MAX_BRANCHES = 100
MAX_GIDS_PER_QUERY = 1000
MAX_PAYLOAD_BYTES = MAX_REQUEST_BYTES
MAX_REASON_LEN = 512
MAX_HEADERS = 32
MAX_HEADER_VALUE_LEN = 1024

MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000
MAX_RETRY_INTERVAL_MS = 3600 * 1000
MAX_RETRY_LIMIT = 10_000
MAX_REQUEST_TIMEOUT_MS = 600_000
MIN_TIMEOUT_MS = 10

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")
_HEADER_KEY_RE = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}")
_RESERVED_HEADER_PREFIXES = ("x-mesh-", "grpc-", ":")
_RESERVED_HEADERS = frozenset({"authorization", "content-type", "te", "user-agent"})


def check_gid(gid: str, field: str = "gid") -> str:
    """A gid is 1..128 characters of ``[A-Za-z0-9_.:-]``, starting with a letter or digit."""
    return _check_id(field, gid, MAX_GID_LEN)


def check_gids(gids: Sequence[str], field: str = "gids") -> list[str]:
    """A batch of at most 1000 gids (else ``field`` is invalid), duplicates dropped, order kept.

    A malformed gid is not an error: no transaction can have it, so it is answered as unknown. A
    participant whose barrier holds one (written before gids were checked) must not be stuck on it.
    """
    if len(gids) > MAX_GIDS_PER_QUERY:
        raise InvalidArgument(field, f"{len(gids)} gids, at most {MAX_GIDS_PER_QUERY}")
    return list(dict.fromkeys(gids))


def is_gid(gid: str) -> bool:
    """Whether ``gid`` is well-formed (see :func:`check_gid`)."""
    return 0 < len(gid) <= MAX_GID_LEN and _ID_RE.fullmatch(gid) is not None


def check_branch_id(branch_id: str, field: str) -> str:
    """A branch id is 1..64 characters of ``[A-Za-z0-9_.:-]``, starting with a letter or digit."""
    return _check_id(field, branch_id, MAX_BRANCH_ID_LEN)


def _check_id(field: str, value: str, limit: int) -> str:
    if not value:
        raise InvalidArgument(field, "missing")
    if len(value) > limit:
        raise InvalidArgument(field, f"longer than {limit} characters")
    if not _ID_RE.fullmatch(value):
        raise InvalidArgument(field, f"{value!r}: only letters, digits and _ . : - (starting alphanumeric)")
    return value


def check_target(target: str, field: str) -> str:
    """A target is ``host:port/package.Service/Method``."""
    try:
        parse_target(target)
    except TargetError as exc:
        raise InvalidArgument(field, str(exc)) from None
    return target


def check_reason(reason: str, field: str = "reason") -> str:
    """A free-text reason of at most 512 characters."""
    if len(reason) > MAX_REASON_LEN:
        raise InvalidArgument(field, f"longer than {MAX_REASON_LEN} characters")
    return reason


def check_options(timeout_ms: int, retry_interval_ms: int, retry_limit: int, request_timeout_ms: int) -> None:
    """Numeric options: 0 means "coordinator default", anything else must be in range."""
    _range("options.timeout_ms", timeout_ms, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS)
    _range("options.retry_interval_ms", retry_interval_ms, 1, MAX_RETRY_INTERVAL_MS)
    _range("options.retry_limit", retry_limit, 1, MAX_RETRY_LIMIT)
    _range("options.request_timeout_ms", request_timeout_ms, MIN_TIMEOUT_MS, MAX_REQUEST_TIMEOUT_MS)


def _range(field: str, value: int, low: int, high: int) -> None:
    if value != 0 and not low <= value <= high:
        raise InvalidArgument(field, f"{value} is not 0 (default) or in {low}..{high}")


def check_headers(headers: Mapping[str, str]) -> None:
    """Custom branch-call headers: lowercase metadata keys, not reserved, printable ASCII values."""
    if len(headers) > MAX_HEADERS:
        raise InvalidArgument("options.headers", f"more than {MAX_HEADERS} entries")
    for key, value in headers.items():
        field = f"options.headers[{key!r}]"
        if not _HEADER_KEY_RE.fullmatch(key) or key.endswith("-bin"):
            raise InvalidArgument(field, "key must be 1..64 of [a-z0-9_.-] and not end in -bin")
        if key.startswith(_RESERVED_HEADER_PREFIXES) or key in _RESERVED_HEADERS:
            raise InvalidArgument(field, "reserved metadata key")
        if len(value) > MAX_HEADER_VALUE_LEN or not all(" " <= c <= "~" for c in value):
            raise InvalidArgument(field, f"value must be at most {MAX_HEADER_VALUE_LEN} printable ASCII")


def check_payload(payload: bytes, field: str) -> None:
    """A branch payload is at most 64 KiB."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidArgument(field, f"{len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")


def check_tcc_branch(branch: BranchSpec, field: str = "branch") -> None:
    """A TCC branch has an id, try (``action``), ``confirm`` and ``cancel`` targets, no dependencies."""
    check_branch_id(branch.branch_id, f"{field}.branch_id")
    check_target(branch.action, f"{field}.action")
    check_target(branch.confirm, f"{field}.confirm")
    check_target(branch.cancel, f"{field}.cancel")
    check_payload(branch.payload, f"{field}.payload")
    if branch.depends_on:
        raise InvalidArgument(f"{field}.depends_on", "only saga steps and MSG branches have dependencies")


def check_tcc_branches(branches: Sequence[BranchSpec], field: str = "branches") -> None:
    """TCC branches registered at Prepare: each as by RegisterBranch, unique ids, at most MAX_BRANCHES."""
    if len(branches) > MAX_BRANCHES:
        raise InvalidArgument(field, f"more than {MAX_BRANCHES} branches")
    seen: set[str] = set()
    for i, branch in enumerate(branches):
        check_tcc_branch(branch, f"{field}[{i}]")
        if branch.branch_id in seen:
            raise InvalidArgument(f"{field}[{i}].branch_id", f"duplicate branch id {branch.branch_id!r}")
        seen.add(branch.branch_id)


def check_msg_branches(branches: Sequence[BranchSpec]) -> None:
    """MSG branches: at least one, unique ids (not ``00``), an action, a payload, acyclic ``depends_on``."""
    _check_count(branches)
    seen: set[str] = set()
    for i, branch in enumerate(branches):
        field = f"branches[{i}]"
        _check_unique_id(branch, field, seen)
        if branch.branch_id == CHECK_BACK_BRANCH:
            raise InvalidArgument(
                f"{field}.branch_id", f"{CHECK_BACK_BRANCH!r} is reserved for the check-back"
            )
        check_target(branch.action, f"{field}.action")
        check_payload(branch.payload, f"{field}.payload")
        if branch.confirm:
            raise InvalidArgument(f"{field}.confirm", "MSG branches have only an action")
        if branch.cancel:
            raise InvalidArgument(f"{field}.cancel", "MSG branches have only an action")
    _check_dag(branches)


def check_saga_branches(branches: Sequence[BranchSpec], concurrent: bool) -> None:
    """Saga steps: at least one, unique ids, an action, an optional compensation, an acyclic DAG."""
    _check_count(branches)
    seen: set[str] = set()
    for i, branch in enumerate(branches):
        field = f"branches[{i}]"
        _check_unique_id(branch, field, seen)
        check_target(branch.action, f"{field}.action")
        if branch.cancel:
            check_target(branch.cancel, f"{field}.cancel")
        check_payload(branch.payload, f"{field}.payload")
        if branch.confirm:
            raise InvalidArgument(f"{field}.confirm", "saga steps have no confirm (use cancel to compensate)")
        if branch.depends_on and not concurrent:
            raise InvalidArgument(f"{field}.depends_on", "dependencies need options.concurrent = true")
    _check_dag(branches)


def _check_count(branches: Sequence[BranchSpec]) -> None:
    if not branches:
        raise InvalidArgument("branches", "at least one branch is required")
    if len(branches) > MAX_BRANCHES:
        raise InvalidArgument("branches", f"more than {MAX_BRANCHES} branches")


def _check_unique_id(branch: BranchSpec, field: str, seen: set[str]) -> None:
    check_branch_id(branch.branch_id, f"{field}.branch_id")
    if branch.branch_id in seen:
        raise InvalidArgument(f"{field}.branch_id", f"duplicate branch id {branch.branch_id!r}")
    seen.add(branch.branch_id)


def _check_dag(branches: Sequence[BranchSpec]) -> None:
    """Every dependency names another branch, and the dependencies have no cycle (saga and MSG)."""
    index = {b.branch_id: i for i, b in enumerate(branches)}
    for i, branch in enumerate(branches):
        for dep in branch.depends_on:
            if dep not in index:
                raise InvalidArgument(f"branches[{i}].depends_on", f"unknown branch {dep!r}")
            if dep == branch.branch_id:
                raise InvalidArgument(f"branches[{i}].depends_on", "a branch cannot depend on itself")
        if len(set(branch.depends_on)) != len(branch.depends_on):
            raise InvalidArgument(f"branches[{i}].depends_on", "duplicate dependency")
    # Kahn's algorithm: whatever is left once no step is free lies on a cycle.
    pending = {b.branch_id: set(b.depends_on) for b in branches}
    while pending:
        free = [bid for bid, deps in pending.items() if not deps]
        if not free:
            first = min(pending, key=index.__getitem__)
            raise InvalidArgument(f"branches[{index[first]}].depends_on", f"cycle through {first!r}")
        for bid in free:
            del pending[bid]
        for deps in pending.values():
            deps.difference_update(free)


def check_mode(mode: int, field: str = "mode") -> Mode:
    """The mode must be one of TCC, SAGA, MSG."""
    try:
        return Mode(mode)
    except ValueError:
        raise InvalidArgument(field, "must be MODE_TCC, MODE_SAGA or MODE_MSG") from None
