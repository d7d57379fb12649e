"""A build daemon's pause between rounds (handlers.pause) ends at the requeue time, at a stop, or at
once when woken (a cancel arrived); BuildView records whether the round saw the cancel."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kopf

from kaib.controller.handlers import BuildView, pause


class Stopped:
    """kopf.DaemonStopped's wait, as the daemon uses it."""

    def __init__(self) -> None:
        self.flag = asyncio.Event()

    async def wait(self, timeout: float | None = None) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flag.wait(), timeout)
        return self.flag.is_set()


def timed(scenario: Any) -> float:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await scenario()
        return loop.time() - t0

    return asyncio.run(run())


def test_a_wake_ends_the_pause_at_once() -> None:
    async def scenario() -> None:
        wake = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, wake.set)
        await pause(Stopped(), wake, 30.0)  # type: ignore[arg-type]

    assert timed(scenario) < 5.0


def test_a_stop_ends_the_pause_and_otherwise_it_lasts_the_requeue() -> None:
    async def stopped_soon() -> None:
        stopped = Stopped()
        asyncio.get_running_loop().call_later(0.05, stopped.flag.set)
        await pause(stopped, asyncio.Event(), 30.0)  # type: ignore[arg-type]

    async def nothing_happens() -> None:
        await pause(Stopped(), asyncio.Event(), 0.2)  # type: ignore[arg-type]

    assert timed(stopped_soon) < 5.0
    assert timed(nothing_happens) >= 0.19


def test_a_round_answers_the_wakes_before_it_and_records_the_cancel() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        raw = {"metadata": {"name": "b", "namespace": "ns", "uid": "u"}, "spec": {"cancel": True}}
        view = BuildView(kopf.Body(raw), "ns", "b")  # type: ignore[arg-type]
        view.wake.set()  # the cancel's event, before the round
        await view.current(None)  # type: ignore[arg-type]  # no GET: the kube client is not used
        return view.wake.is_set(), view.cancel_seen, view.stale

    woken, seen, stale = asyncio.run(scenario())
    assert not woken and seen and not stale
