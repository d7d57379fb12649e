"""The queue's decision from an index snapshot, and the reservations that cover the index's lag."""

from __future__ import annotations

import asyncio

from kaib.azure.clients import AzureClients
from kaib.controller import engine, queue
from kaib.controller.buildstatus import BuildStatus
from kaib.controller.queue import ALL_ACTIVE, Entry, Reservations
from kaib.controller.run_context import Engine, EngineSettings
from tests.unit.test_controller_engine import FakeKube, build, objects


def entry(
    name: str, phase: str = "Queued", created: str = "2026-01-01T00:00:00Z", cancel: bool = False
) -> Entry:
    return Entry(created, name, f"uid-{name}", phase, cancel)


def decide(me: Entry, same: list[Entry], active: int = 0, max_active: int = 10) -> str | None:
    return queue.blocker(me, "t", [me, *same], active, max_active)


def test_free_template_under_the_limit_starts() -> None:
    assert decide(entry("a"), [entry("done", phase="Succeeded")]) is None


def test_global_limit_comes_first() -> None:
    assert (
        decide(entry("a"), [], active=3, max_active=3)
        == "waiting: 3 builds active, the operator's limit is 3"
    )
    assert decide(entry("a"), [], active=2, max_active=3) is None


def test_an_active_build_of_the_template_blocks() -> None:
    for phase in ("Running", "Canceling"):
        assert decide(entry("b"), [entry("a", phase=phase)]) == "waiting for build a of template t to finish"


def test_first_come_first_served_by_creation_then_name() -> None:
    early, late = entry("z", created="2026-01-01T00:00:00Z"), entry("a", created="2026-01-01T00:00:05Z")
    assert decide(late, [early]) == "queued behind build z of template t"
    assert decide(early, [late]) is None
    tie_a, tie_b = entry("a"), entry("b")  # same second: the name decides
    assert decide(tie_b, [tie_a]) == "queued behind build a of template t"
    assert decide(tie_a, [tie_b]) is None


def test_not_yet_queued_counts_as_ahead_but_a_canceled_one_does_not() -> None:
    assert decide(entry("b"), [entry("a", phase="")]) == "queued behind build a of template t"
    assert decide(entry("b"), [entry("a", cancel=True)]) is None


def test_index_entries_put_active_builds_under_all_active() -> None:
    running = queue.index_entries(build("a", phase="Running"))
    assert set(running) == {("ns", "t"), ALL_ACTIVE} and running[ALL_ACTIVE].phase == "Running"
    for phase in ({}, {"phase": "Queued"}, {"phase": "Succeeded"}):
        assert set(queue.index_entries(build("a", **phase))) == {("ns", "t")}


def test_a_reservation_counts_until_the_index_catches_up() -> None:
    reservations = Reservations()
    stale = queue.index_of([build("a", phase="Queued"), build("b", phase="Queued")])
    reservations.add(("ns", "t"), "uid-a")
    same, active = reservations.view(stale, ("ns", "t"))
    assert active == 1 and {e.name: e.phase for e in same} == {"a": "Running", "b": "Queued"}
    fresh = queue.index_of([build("a", phase="Running"), build("b", phase="Queued")])
    assert reservations.view(fresh, ("ns", "t"))[1] == 1  # counted once, from the index
    assert reservations.started == {}
    reservations.add(("ns", "t"), "uid-b")
    assert reservations.view({}, ("ns", "t")) == ([], 0)  # the build is gone: so is its reservation
    assert reservations.started == {}


def test_two_builds_deciding_against_a_stale_index_never_both_take_the_last_slot() -> None:
    # Two templates, one slot; the index is never updated (as if the watch events were late).
    objs = objects(build("a", template="x", phase="Queued"), build("b", template="y", phase="Queued"))
    eng = Engine(AzureClients.from_env({}), FakeKube(objs), EngineSettings(max_active=1))  # type: ignore[arg-type]
    eng.queue_index = queue.index_of(objs.values())
    runs = [engine.Run(eng, b, BuildStatus.of(b, "2026-01-01T00:00:10Z")) for b in objs.values()]

    async def both() -> list[str | None]:
        return list(await asyncio.gather(*(engine._admit(run) for run in runs)))

    blockers = asyncio.run(both())
    assert sorted(b is None for b in blockers) == [False, True]
    assert "builds active" in str(next(b for b in blockers if b))
