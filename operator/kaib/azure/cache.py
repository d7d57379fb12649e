"""One read for many askers: builds starting together ask ARM the same questions at the same moment.

Preflight asks whether the resource providers are registered and how much quota the region has
left. 200 builds starting together asked 800 times for the same few answers, and deserialised each
Provider and usage list: the largest item of the operator's CPU while they started. While a read
is in flight, everyone asking the same question waits for it instead of sending their own. Nothing
is kept after the answer: the next question reads again, so an answer is never older than the
moment it was asked for (a provider unregistered, a quota lowered, show at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._in_flight: dict[Hashable, asyncio.Future[T]] = {}

    async def get(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        pending = self._in_flight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                return await self.get(key, read)  # the reader was: read again
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            value = await read()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._in_flight.pop(key, None)
        future.set_result(value)
        return value
