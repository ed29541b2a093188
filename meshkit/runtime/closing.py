"""``async with`` for anything with an ``async close()``: the one ``__aenter__``/``__aexit__`` pair."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class AsyncClosing(ABC):
    """A base for clients and resources: ``async with`` returns the object and awaits ``close()`` on exit."""

    __slots__ = ()

    @abstractmethod
    async def close(self) -> None:
        """Release what the object holds."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
