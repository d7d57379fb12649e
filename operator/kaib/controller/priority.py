"""New builds first: a build's first round (the one that records it Queued) goes ahead of the next
rounds of builds already under way.

When many builds arrive at once (a pipeline applying 200), every build already running competes
with them for the operator's event loop, the apiserver and the CPU; without an order, acknowledging
a new build waited behind seconds of other builds' Azure polling and status writes (scale bench:
first status p99 8 s). A first round costs one status write; a running build's next round waiting
a moment costs nothing its minutes-long Azure operations would notice. So while any first round is
pending, and for a quiet moment after the last, other rounds wait, at most `max_hold` seconds each:
a steady stream of new builds slows the others down but never stops them. Rounds already in
progress are not interrupted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

MAX_HOLD = 5.0  # seconds a round waits at most for new builds' first rounds
QUIET = 0.3  # seconds without a pending first round before the other rounds go on


class NewFirst:
    def __init__(self, max_hold: float = MAX_HOLD, quiet: float = QUIET) -> None:
        self.max_hold, self.quiet = max_hold, quiet
        self._pending = 0
        self._last_first = float("-inf")  # loop time the last first round ended
        self._open = asyncio.Event()
        self._open.set()

    @property
    def pending(self) -> int:
        return self._pending

    @asynccontextmanager
    async def first_round(self) -> AsyncIterator[None]:
        """Around a build's first round: holds the other rounds back until it is done."""
        self._pending += 1
        self._open.clear()
        try:
            yield
        finally:
            self._pending -= 1
            self._last_first = asyncio.get_running_loop().time()
            if not self._pending:
                self._open.set()

    async def wait_turn(self) -> None:
        """Before any other round: wait while first rounds are pending, and for `quiet` seconds
        after the last one (new builds arrive one by one: between two of them nothing is pending,
        and every held round starting in that gap would be the same crowd again); at most
        `max_hold` seconds in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_hold
        while (now := loop.time()) < deadline:
            if self._pending:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._open.wait(), deadline - now)
                continue
            calm_at = self._last_first + self.quiet
            if now >= calm_at:
                return
            await asyncio.sleep(min(calm_at, deadline) - now)
