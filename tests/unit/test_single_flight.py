"""kaib.azure.cache.SingleFlight: askers of the same question share one read while it is in flight,
and nothing is kept after it."""

from __future__ import annotations

import asyncio

import pytest

from kaib.azure.cache import SingleFlight


def test_concurrent_askers_share_one_read_and_later_ones_read_again() -> None:
    reads: list[str] = []

    async def read() -> str:
        reads.append("read")
        await asyncio.sleep(0.05)
        return f"answer {len(reads)}"

    async def scenario() -> tuple[list[str], str]:
        shared: SingleFlight[str] = SingleFlight()
        together = await asyncio.gather(*(shared.get("q", read) for _ in range(50)))
        other = await shared.get("another question", read)
        assert other == "answer 2"
        return together, await shared.get("q", read)

    together, later = asyncio.run(scenario())
    assert set(together) == {"answer 1"}
    assert later == "answer 3"  # nothing kept: asked again, read again
    assert len(reads) == 3


def test_a_failed_read_fails_its_askers_and_is_not_kept() -> None:
    calls = 0

    async def read() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 1:
            raise RuntimeError("429")
        return "ok"

    async def scenario() -> str:
        shared: SingleFlight[str] = SingleFlight()
        results = await asyncio.gather(*(shared.get("q", read) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        return await shared.get("q", read)

    assert asyncio.run(scenario()) == "ok"
    assert calls == 2


def test_a_cancelled_reader_does_not_cancel_the_others() -> None:
    async def scenario() -> str:
        shared: SingleFlight[str] = SingleFlight()
        gate = asyncio.Event()

        async def slow() -> str:
            await gate.wait()
            return "late"

        async def fast() -> str:
            return "fresh"

        reader = asyncio.create_task(shared.get("q", slow))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(shared.get("q", fast))
        await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        return await waiter  # its reader went away: it reads for itself

    assert asyncio.run(scenario()) == "fresh"
