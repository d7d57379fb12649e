"""optimize.vmBoot: the Optimizing step runs between validation and distribution only when Enabled,
and the combinations AIB does not support are refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kaib.controller import distribution, engine, optimize
from kaib.controller.buildstatus import STEP_NAMES
from kaib.controller.run_context import Run
from kaib.controller.stepresult import StepResult
from tests.unit.test_controller_engine import FakeKube, make_engine, objects

ENABLED = {"optimize": {"vmBoot": {"state": "Enabled"}}}


def test_optimize_sits_between_validate_and_distribute() -> None:
    names = list(STEP_NAMES)
    assert names.index("validate") + 1 == names.index("optimize") == names.index("distribute") - 1


def test_unsupported_combinations() -> None:
    assert optimize.unsupported({}, "Arm64") is None  # not Enabled: nothing to refuse
    assert optimize.unsupported(ENABLED, "x64") is None
    assert optimize.unsupported(ENABLED, None) is None  # a managed image source does not say
    arm = optimize.unsupported(ENABLED, "Arm64") or ""
    assert "does not support Arm64" in arm and "Disabled" in arm
    big = optimize.unsupported({**ENABLED, "vmProfile": {"osDiskSizeGB": 4096}}, "x64") or ""
    assert "over 2 TB" in big and "4096" in big
    assert optimize.unsupported({**ENABLED, "vmProfile": {"osDiskSizeGB": 2048}}, "x64") is None


def after_validation(spec: dict[str, Any]) -> dict[str, Any]:
    names = list(STEP_NAMES)
    done = names[: names.index("optimize")]
    return {
        "metadata": {"name": "b", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {"templateRef": {"name": "t"}},
        "status": {
            "phase": "Running",
            "subState": "Validating",
            "buildId": "abc",
            "startTime": "2099-01-01T00:00:00Z",  # never timed out
            "stagingResourceGroup": "/subscriptions/s/resourceGroups/IT_stage",
            "template": {"spec": spec},
            "steps": [{"name": n, "state": "Done" if n in done else "Pending"} for n in names],
        },
    }


def advance(b: dict[str, Any]) -> engine.Advance:
    return asyncio.run(engine.advance(make_engine(FakeKube(objects(b))), b))


def states(status: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["state"] for s in status["steps"]}


@pytest.fixture()
def distributing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    async def distribute(run: Run) -> StepResult:
        calls.append("distribute")
        return StepResult.wait(1.0)

    monkeypatch.setitem(engine.SIMPLE_STEPS, "distribute", distribute)
    return calls


def test_disabled_skips_straight_to_distribution(distributing: list[str]) -> None:
    result = advance(after_validation({}))
    assert states(result.status)["optimize"] == "Skipped"
    assert result.status["subState"] == "Distributing" and distributing == ["distribute"]
    assert "Optimize" not in {e.reason for e in result.events}


def test_enabled_generalizes_in_its_own_step_then_distributes(
    monkeypatch: pytest.MonkeyPatch, distributing: list[str]
) -> None:
    rounds = iter([StepResult.wait(0.5), StepResult.done()])

    async def generalize(run: Run) -> StepResult:
        return next(rounds)

    monkeypatch.setattr(distribution, "generalize", generalize)
    b = after_validation(ENABLED)
    first = advance(b)  # deallocating
    assert first.status["subState"] == "Optimizing" and states(first.status)["optimize"] == "Running"
    assert first.requeue == 0.5 and distributing == []
    assert [e.reason for e in first.events] == ["Optimize"]
    b["status"] = first.status
    second = advance(b)  # generalized: the step is done, and says what kaib cannot do
    assert states(second.status)["optimize"] == "Done" and second.status["subState"] == "Optimizing"
    optimized = next(c for c in second.status["conditions"] if c["type"] == "Optimized")
    assert optimized["status"] == "False" and optimized["reason"] == "NotAvailable"
    assert "no public API" in optimized["message"]
    assert [(e.type, e.reason) for e in second.events] == [("Warning", "OptimizeUnavailable")]
    b["status"] = second.status
    third = advance(b)
    assert third.status["subState"] == "Distributing" and distributing == ["distribute"]


class FakeImages:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.calls: list[tuple[str, ...]] = []

    async def get(self, *args: str) -> Any:
        from azure.mgmt.compute.models import GalleryImage

        self.calls.append(args)
        return GalleryImage(self.body)  # any SDK model: to_rest reads it back as REST JSON


class FakeAzure:
    def __init__(self, body: dict[str, Any]) -> None:
        self.images = FakeImages(body)
        self.compute = type(
            "Compute", (), {"virtual_machine_images": self.images, "gallery_images": self.images}
        )

    def for_subscription(self, subscription: str | None) -> Any:
        return self


def run_for(source: dict[str, Any], body: dict[str, Any]) -> tuple[Run, FakeImages]:
    from kaib.controller.buildstatus import BuildStatus
    from kaib.controller.run_context import Engine, EngineSettings

    b = after_validation(
        {**ENABLED, "source": source, "azure": {"subscriptionId": "s", "location": "westus"}}
    )
    b["status"]["exactSourceVersion"] = "1.2.3"
    azure = FakeAzure(body)
    eng = Engine(azure, FakeKube({}), EngineSettings())  # type: ignore[arg-type]
    return Run(eng, b, BuildStatus.of(b, "2026-01-01T00:00:00Z")), azure.images


def test_the_source_architecture_comes_from_the_platform_image_version_or_the_gallery_image() -> None:
    platform = {"type": "PlatformImage", "publisher": "P", "offer": "O", "sku": "S", "version": "latest"}
    run, images = run_for(platform, {"location": "westus", "properties": {"architecture": "Arm64"}})
    assert asyncio.run(optimize.source_architecture(run)) == "Arm64"
    assert images.calls == [("westus", "P", "O", "S", "1.2.3")]  # the resolved version
    gallery = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/gal"
    version = f"{gallery}/images/def/versions/1.0.0"
    run, images = run_for({"type": "SharedImageVersion", "imageVersionId": version}, {"properties": {}})
    assert asyncio.run(optimize.source_architecture(run)) is None  # not said: nothing to refuse
    assert images.calls == [("g", "gal", "def")]
    managed = {"type": "ManagedImage", "imageId": "/subscriptions/s/resourceGroups/g/providers/x/images/i"}
    run, images = run_for(managed, {})
    assert asyncio.run(optimize.source_architecture(run)) is None and images.calls == []


def test_the_api_lists_the_condition_of_every_step() -> None:
    from kaib.api.status import STEP_CONDITIONS
    from kaib.controller.buildstatus import CONDITION

    assert [CONDITION[name] for name in STEP_NAMES] == list(STEP_CONDITIONS)
