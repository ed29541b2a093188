"""Hypothesis strategies for the call metadata of the RPC fuzz test: transaction context and credentials.

Plausible metadata is what the coordinator sends (a consistent ``x-mesh-*`` set whose op suits the
method, the admin token); malformed metadata is what a careless or hostile client sends (duplicate keys,
a mode that contradicts the op, unknown values, non-UTF-8 ``-bin`` values, two ``authorization``
headers, a wrong token, a forged or doubled ``x-mesh-auth``). Most calls are signed with the mesh secret
so they reach the handlers, not only the credential check.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

Pairs = tuple[tuple[str, str | bytes], ...]

OPS_OF_MODE = {
    "tcc": ("try", "confirm", "cancel"),
    "saga": ("action", "compensate"),
    "msg": ("msg", "action"),
}
MISMATCHED = (("saga", "try"), ("saga", "confirm"), ("saga", "cancel"), ("tcc", "action"), ("tcc", "msg"))
MISMATCHED += (("msg", "try"), ("msg", "compensate"), ("msg", "cancel"))


def method_op(method: str) -> tuple[str, str]:
    """The (mode, op) the coordinator would call ``method`` with."""
    for prefix, pair in (
        ("Try", ("tcc", "try")),
        ("Confirm", ("tcc", "confirm")),
        ("Cancel", ("tcc", "cancel")),
    ):
        if method.startswith(prefix) and method != "Cancel":
            return pair
    if method == "QueryPrepared":
        return ("msg", "msg")
    return ("msg", "action")


def context(gid: str, mode: str, op: str, branch: str = "01") -> Pairs:
    """An ``x-mesh-*`` context."""
    return (("x-mesh-gid", gid), ("x-mesh-branch", branch), ("x-mesh-op", op), ("x-mesh-mode", mode))


def plausible(method: str) -> st.SearchStrategy[Pairs]:
    """The context the coordinator would send to ``method``, under a few shared gids.

    Calls of different methods share gids (a cancel meets a try of another method, a repeat meets the
    first call), except that confirms have their own: the fuzzer holds the mesh credentials, and a
    try + confirm of one gid would move stock or points for good, outside any order, as only the
    coordinator may (the audit would rightly flag it).
    """
    mode, op = method_op(method)
    prefix = "fuzz-c" if op == "confirm" else "fuzz-g"
    shared = st.sampled_from((f"{prefix}-1", f"{prefix}-2"))
    gids = shared | st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True).map(lambda s: f"{prefix}-{s}")
    return gids.map(lambda gid: context(gid, mode, op))


def malformed(method: str) -> st.SearchStrategy[Pairs]:
    """An ``x-mesh-*`` context no coordinator sends."""
    mode, op = method_op(method)
    good = context("fuzz-gid-1", mode, op)
    return st.sampled_from(
        (
            (*good, ("x-mesh-gid", "fuzz-gid-2")),
            (*good, ("x-mesh-op", "cancel" if op != "cancel" else "try")),
            (*good, ("x-mesh-mode", "saga" if mode != "saga" else "tcc")),
            (*good, ("x-mesh-branch", "02")),
            *(context("fuzz-gid-1", m, o) for m, o in MISMATCHED),
            context("fuzz-gid-1", mode, "tryy"),
            context("fuzz-gid-1", "xa", op),
            context("g" * 129, mode, op),
            context("has space", mode, op),
            context("fuzz-gid-1", mode, op, branch=""),
            (("x-mesh-gid", "fuzz-gid-1"),),
            (("x-mesh-gid", ""),),
            (*good, ("x-mesh-gid-bin", b"\xff\xfe")),
            (("x-mesh-gid-bin", b"\xc3\x28"),),
            (("x-mesh-op-bin", b"try"),),
        )
    )


def credentials(admin_token: str) -> st.SearchStrategy[Pairs]:
    """None, the admin token, or broken authorization metadata."""
    right = ("authorization", f"Bearer {admin_token}")
    return st.sampled_from(
        (
            (),
            (right,),
            (right,),
            (("authorization", "Bearer wrong"),),
            (("authorization", "Bearer"),),
            (("authorization", "Basic abc"),),
            (right, ("authorization", "Bearer wrong")),
            (right, right),
            (("authorization-bin", b"\xff"),),
        )
    )


MESH_SIGNED = "signed"  # the call gets a valid x-mesh-auth, computed when it is sent


def mesh_credentials() -> st.SearchStrategy[tuple[bool, Pairs]]:
    """(sign the call?, extra x-mesh-auth headers): mostly signed, sometimes forged or doubled."""
    return st.sampled_from(
        (
            (True, ()),
            (True, ()),
            (True, ()),
            (False, ()),
            (False, (("x-mesh-auth", "v1.1.00"),)),
            (False, (("x-mesh-auth", "garbage"),)),
            (False, (("x-mesh-auth-bin", b"\xff"),)),
            (True, (("x-mesh-auth", "v1.1.00"),)),
        )
    )


@dataclass(frozen=True)
class CallMetadata:
    """The metadata of one fuzzed call; ``sign`` asks for a valid ``x-mesh-auth`` at send time."""

    pairs: Pairs
    sign: bool
    malformed: bool = False  # its x-mesh-* context is malformed: the call must never answer OK

    def keys(self) -> list[str]:
        """The metadata keys (for a failure message)."""
        return [k for k, _ in self.pairs] + (["x-mesh-auth(signed)"] if self.sign else [])


def metadata(method: str, admin_token: str) -> st.SearchStrategy[CallMetadata]:
    """Call metadata for ``method``: no, plausible or malformed context; admin and mesh credentials."""
    foreign = st.sampled_from(((), (("trace-bin", b"\xff\xfe"),)))  # not ours: never read
    tx = st.one_of(
        st.tuples(st.just(()), st.just(False)),
        st.tuples(plausible(method), st.just(False)),
        st.tuples(malformed(method), st.just(True)),
    )
    return st.tuples(tx, credentials(admin_token), mesh_credentials(), foreign).map(
        lambda t: CallMetadata((*t[0][0], *t[1], *t[2][1], *t[3]), t[2][0], t[0][1])
    )
