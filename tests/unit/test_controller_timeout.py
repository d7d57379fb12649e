"""buildTimeoutInMinutes at the late steps: a timeout during distribution fails that step and cleans
up (naming what distribution had begun); a build already cleaning up is never failed again, and its
cleanup runs to the end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kaib.controller import engine, steps
from kaib.controller.buildstatus import STEP_NAMES
from kaib.controller.run_context import Run
from kaib.controller.stepresult import StepResult
from tests.unit.test_controller_engine import FakeKube, make_engine, objects

STAGING = "/subscriptions/s/resourceGroups/IT_stage"
IMAGE = "/subscriptions/s/resourceGroups/images/providers/Microsoft.Compute/images/golden"
VHD = "https://kaibaccount.blob.core.windows.net/vhds/b1/disk.vhd"


def late_build(current: str, minutes_ago: int = 10) -> dict[str, Any]:
    """A Running build at step `current` (earlier steps done), started `minutes_ago`, timeout 6."""
    names = list(STEP_NAMES)
    state = {n: "Done" for n in names[: names.index(current)]}
    state[current] = "Running"
    start = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": "b", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {"templateRef": {"name": "t"}},
        "status": {
            "phase": "Running",
            "subState": "Distributing",
            "buildId": "abc",
            "startTime": start,
            "stagingResourceGroup": STAGING,
            "template": {"spec": {"buildTimeoutInMinutes": 6, "distribute": [{"runOutputName": "golden"}]}},
            "steps": [{"name": n, "state": state.get(n, "Pending")} for n in names],
        },
    }


class FakeCleanup:
    def __init__(self, rounds_left: int) -> None:
        self.rounds_left, self.calls = rounds_left, 0

    async def __call__(self, run: Run) -> StepResult:
        self.calls += 1
        self.rounds_left -= 1
        return StepResult.done() if self.rounds_left <= 0 else StepResult.wait(1.0, "deleting the build VM")


async def never(run: Run) -> StepResult:
    raise AssertionError("a timed-out step must not run again")


def advance(b: dict[str, Any]) -> engine.Advance:
    return asyncio.run(engine.advance(make_engine(FakeKube(objects(b))), b))


def test_timeout_during_distribution_fails_it_cleans_up_and_names_what_was_begun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cleanup = FakeCleanup(rounds_left=2)
    monkeypatch.setattr(steps, "cleanup", cleanup)
    monkeypatch.setitem(engine.SIMPLE_STEPS, "distribute", never)
    b = late_build("distribute")
    b["status"]["runOutputs"] = [
        {"runOutputName": "golden", "artifactId": IMAGE, "provisioningState": "Creating"},
        {"runOutputName": "disk", "artifactUri": VHD, "provisioningState": "Creating"},
    ]

    first = advance(b)
    steps_by_name = {s["name"]: s for s in first.status["steps"]}
    assert steps_by_name["distribute"]["state"] == "Failed"
    assert steps_by_name["cleanup"]["state"] == "Running"
    assert first.status["phase"] == "Running" and first.status["subState"] == "CleaningUp"
    assert first.requeue == 1.0
    distributed = next(c for c in first.status["conditions"] if c["type"] == "Distributed")
    assert distributed["reason"] == "Timeout"
    assert "buildTimeoutInMinutes (6 min) during step distribute" in distributed["message"]
    assert [e.reason for e in first.events if e.type == "Warning"] == ["DistributeFailed"]

    b["status"] = first.status
    second = advance(b)  # still past the deadline, cleanup finishes: no second failure
    assert cleanup.calls == 2
    assert second.status["phase"] == "Failed" and second.requeue is None
    message = second.status["message"]
    assert "during step distribute" in message and "the build's resources are deleted" in message
    assert (
        f"{IMAGE} (Creating)" in message
        and f"{VHD} (Creating)" in message
        and "yours to keep or delete" in message
    )
    assert [e.reason for e in second.events] == ["Failed"]


def test_a_build_cleaning_up_when_the_deadline_passes_keeps_cleaning_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cleanup = FakeCleanup(rounds_left=3)
    monkeypatch.setattr(steps, "cleanup", cleanup)
    b = late_build("distribute")
    # distribution had failed on its own before the deadline; cleanup was under way
    for s in b["status"]["steps"]:
        if s["name"] == "distribute":
            s["state"] = "Failed"
        if s["name"] == "cleanup":
            s["state"] = "Running"
    b["status"]["subState"] = "CleaningUp"
    b["status"]["conditions"] = [
        {"type": "Distributed", "status": "False", "reason": "Conflict", "message": "image exists"}
    ]
    for _ in range(2):
        result = advance(b)
        assert result.status["phase"] == "Running" and result.requeue == 1.0
        assert not [e for e in result.events if e.type == "Warning"]
        assert "buildTimeoutInMinutes" not in result.status["message"]
        b["status"] = result.status
    final = advance(b)
    assert final.status["phase"] == "Failed"
    assert final.status["message"].startswith("image exists")
    assert "buildTimeoutInMinutes" not in final.status["message"]


def test_before_the_deadline_nothing_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    async def distributing(run: Run) -> StepResult:
        calls.append("distribute")
        return StepResult.wait(2.0, "creating the image")

    monkeypatch.setitem(engine.SIMPLE_STEPS, "distribute", distributing)
    result = advance(late_build("distribute", minutes_ago=5))
    assert calls == ["distribute"] and result.status["phase"] == "Running" and result.requeue == 2.0
