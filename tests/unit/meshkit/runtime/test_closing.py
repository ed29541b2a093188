"""AsyncClosing: ``async with`` gives the object back and closes it on the way out, error or not."""

from __future__ import annotations

import pytest

from meshkit.runtime.closing import AsyncClosing


class _Resource(AsyncClosing):
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


async def test_async_with_returns_the_object_and_closes_it_once() -> None:
    resource = _Resource()
    async with resource as entered:
        assert entered is resource
        assert resource.closed == 0
    assert resource.closed == 1


async def test_async_with_closes_when_the_body_raises_and_lets_the_error_through() -> None:
    resource = _Resource()
    with pytest.raises(LookupError):
        async with resource:
            raise LookupError("body failed")
    assert resource.closed == 1
