"""controller.priority.NewFirst: new builds' first rounds go ahead of other rounds, which wait at
most max_hold; and kopf's diffbase annotation is written on templates only (run.TemplatesOnlyDiffBase)."""

from __future__ import annotations

import asyncio

import kopf

from kaib.controller.priority import NewFirst
from kaib.controller.run import TemplatesOnlyDiffBase


def test_other_rounds_wait_for_first_rounds() -> None:
    async def scenario() -> list[str]:
        gate, order = NewFirst(max_hold=5.0), []
        release = asyncio.Event()

        async def new_build() -> None:
            async with gate.first_round():
                await release.wait()
                order.append("first")

        async def running_build() -> None:
            await gate.wait_turn()
            order.append("other")

        first = asyncio.create_task(new_build())
        await asyncio.sleep(0)
        assert gate.pending == 1
        other = asyncio.create_task(running_build())
        await asyncio.sleep(0.05)
        assert order == []  # held
        release.set()
        await asyncio.gather(first, other)
        assert gate.pending == 0
        await gate.wait_turn()  # open: no wait at all
        return order

    assert asyncio.run(scenario()) == ["first", "other"]


def test_a_round_is_held_at_most_max_hold() -> None:
    async def scenario() -> float:
        gate = NewFirst(max_hold=0.1)
        never = asyncio.Event()

        async def stuck_first_round() -> None:
            async with gate.first_round():
                await never.wait()

        task = asyncio.create_task(stuck_first_round())
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await gate.wait_turn()
        held = loop.time() - t0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert gate.pending == 0  # a cancelled first round releases the gate
        return held

    assert 0.09 <= asyncio.run(scenario()) < 1.0


def test_a_failing_first_round_releases_the_gate() -> None:
    async def scenario() -> int:
        gate = NewFirst()
        try:
            async with gate.first_round():
                raise RuntimeError("apiserver down")
        except RuntimeError:
            pass
        return gate.pending

    assert asyncio.run(scenario()) == 0


def test_the_diffbase_annotation_is_kept_on_templates_only() -> None:
    storage = TemplatesOnlyDiffBase(prefix="kaib.dev", key="last-handled-spec")
    essence = {"spec": {"templateRef": {"name": "t"}}}
    for kind, written in (("ImageTemplate", True), ("ImageBuild", False)):
        body = kopf.Body({"apiVersion": "kaib.dev/v1alpha1", "kind": kind, "metadata": {"name": "x"}})
        patch = kopf.Patch()
        storage.store(body=body, patch=patch, essence=essence)  # type: ignore[arg-type]
        assert (
            "kaib.dev/last-handled-spec" in (patch.get("metadata") or {}).get("annotations", {})
        ) is written


def test_rounds_wait_for_a_quiet_moment_after_the_last_first_round() -> None:
    """Arrivals come one by one: a gap between two of them does not release every held round."""

    async def scenario() -> tuple[float, float]:
        gate = NewFirst(max_hold=5.0, quiet=0.2)
        loop = asyncio.get_running_loop()
        async with gate.first_round():
            pass
        t0 = loop.time()
        await gate.wait_turn()  # right after a first round: waits out the quiet period
        after_arrival = loop.time() - t0
        t0 = loop.time()
        await gate.wait_turn()  # nothing new since: at once
        return after_arrival, loop.time() - t0

    after_arrival, calm = asyncio.run(scenario())
    assert 0.15 <= after_arrival < 1.0
    assert calm < 0.05
