"""The phase machine's Kubernetes-only paths with a fake API: start, queueing, cancel before start."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from kaib.azure.clients import AzureClients
from kaib.controller import engine
from kaib.controller.run_context import Engine, EngineSettings


class FakeKube:
    def __init__(self, objects: dict[tuple[str, str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, namespace, name))

    async def list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for (p, ns, _), o in self.objects.items() if p == plural and namespace in (None, ns)]

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.patches.append((plural, name, status))
        self.objects[(plural, namespace, name)]["status"] = status


def build(
    name: str, template: str = "t", created: str = "2026-01-01T00:00:00Z", **status: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {"templateRef": {"name": template}},
        "status": status,
    }


def make_engine(kube: FakeKube, max_active: int = 10) -> Engine:
    settings = EngineSettings(max_active=max_active)
    return Engine(AzureClients.from_env({}), kube, settings)  # type: ignore[arg-type]


def blocker(
    objects: dict[tuple[str, str, str], dict[str, Any]], name: str, max_active: int = 10
) -> str | None:
    kube = FakeKube(objects)
    run = engine.Run(make_engine(kube, max_active), objects[("imagebuilds", "ns", name)], None)  # type: ignore[arg-type]
    return asyncio.run(engine._blocker(run))


def objects(*builds: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {("imagebuilds", "ns", b["metadata"]["name"]): b for b in builds}


def test_a_build_waits_for_the_running_build_of_its_template() -> None:
    objs = objects(build("a", phase="Running"), build("b", phase="Queued"))
    assert "waiting for build a" in (blocker(objs, "b") or "")


def test_builds_of_other_templates_do_not_block() -> None:
    objs = objects(build("a", template="other", phase="Running"), build("b", phase="Queued"))
    assert blocker(objs, "b") is None


def test_queued_builds_go_first_come_first_served() -> None:
    objs = objects(
        build("early", created="2026-01-01T00:00:00Z", phase="Queued"),
        build("late", created="2026-01-01T00:00:05Z", phase="Queued"),
    )
    assert blocker(objs, "early") is None
    assert "queued behind build early" in (blocker(objs, "late") or "")


def test_the_global_limit_counts_active_builds_of_all_templates() -> None:
    objs = objects(build("a", template="x", phase="Running"), build("b", template="y", phase="Queued"))
    assert "limit is 1" in (blocker(objs, "b", max_active=1) or "")
    assert blocker(objs, "b", max_active=2) is None


def test_new_build_gets_an_id_and_queued_status_first() -> None:
    kube = FakeKube(objects(build("a")))
    result = asyncio.run(engine.advance(make_engine(kube), build("a")))
    assert result.status["phase"] == "Queued" and len(result.status["buildId"]) == 10
    assert result.requeue == 0.0
    assert [e.reason for e in result.events] == ["Queued"]


def test_cancel_before_start_ends_canceled_without_azure() -> None:
    queued = build("a", phase="Queued", buildId="x", steps=[])
    queued["spec"]["cancel"] = True
    kube = FakeKube(objects(queued))
    result = asyncio.run(engine.advance(make_engine(kube), queued))
    assert result.status["phase"] == "Canceled" and result.requeue is None
    stalled = [c for c in result.status["conditions"] if c["type"] == "Stalled"]
    assert stalled[0]["status"] == "True"


def test_missing_template_keeps_the_build_queued_with_a_message() -> None:
    queued = build("a", phase="Queued", buildId="x", steps=[])
    kube = FakeKube(objects(queued))
    result = asyncio.run(engine.advance(make_engine(kube), queued))
    assert result.status["phase"] == "Queued"
    assert "ImageTemplate t" in result.status["message"]
    assert result.requeue is not None and result.requeue > 0


def test_finished_builds_are_left_alone() -> None:
    done = build("a", phase="Succeeded")
    result = asyncio.run(engine.advance(make_engine(FakeKube(objects(done))), done))
    assert result.requeue is None and result.status == {"phase": "Succeeded"}


def test_timeout_counts_from_start_with_aib_default_of_240_minutes() -> None:
    from kaib.controller.buildstatus import BuildStatus

    def timed_out(start: str, minutes: int | None) -> bool:
        spec: dict[str, Any] = {"source": {"type": "PlatformImage"}}
        if minutes is not None:
            spec["buildTimeoutInMinutes"] = minutes
        b = build("a", phase="Running", startTime=start)
        b["status"]["template"] = {"spec": spec}
        run = engine.Run(make_engine(FakeKube(objects(b))), b, BuildStatus.of(b, start))
        return engine._timed_out(run)

    ten_minutes_ago = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert timed_out(ten_minutes_ago, 6)
    assert not timed_out(ten_minutes_ago, None)  # 0 or unset: AIB's 240 minutes
    assert not timed_out(ten_minutes_ago, 0)
    assert timed_out("2000-01-01T00:00:00Z", None)


def test_with_watched_namespaces_only_those_are_listed() -> None:
    objs = objects(build("a", template="x", phase="Running"), build("b", template="y", phase="Queued"))
    objs[("imagebuilds", "elsewhere", "c")] = {
        **build("c", phase="Running"),
        "metadata": {**build("c")["metadata"], "namespace": "elsewhere"},
    }
    kube = FakeKube(objs)
    eng = Engine(AzureClients.from_env({}), kube, EngineSettings(max_active=2, namespaces=("ns",)))  # type: ignore[arg-type]
    run = engine.Run(eng, objs[("imagebuilds", "ns", "b")], None)  # type: ignore[arg-type]
    assert asyncio.run(engine._blocker(run)) is None  # 'c' elsewhere does not count toward the limit
    assert EngineSettings.from_env(fast=True, env={}, namespaces=("team-*",)).namespaces == ()


def test_a_build_of_an_invalid_template_fails_with_the_problems() -> None:
    queued = build("a", phase="Queued", buildId="x", steps=[])
    bad = {"metadata": {"name": "t", "namespace": "ns", "generation": 1, "uid": "tu"}, "spec": {"source": {}}}
    objs = objects(queued)
    objs[("imagetemplates", "ns", "t")] = bad
    result = asyncio.run(engine.advance(make_engine(FakeKube(objs)), queued))
    assert result.status["phase"] == "Failed" and result.requeue is None
    assert (
        "ImageTemplate t is invalid" in result.status["message"]
        and "spec.distribute" in result.status["message"]
    )


def test_abort_keeps_resources_for_a_failing_customizer_but_not_for_a_timeout() -> None:
    from kaib.controller.buildstatus import BuildStatus

    spec = {"errorHandling": {"onCustomizerError": "abort"}}
    b = build("a", phase="Running")
    b["status"]["template"] = {"spec": spec}
    st = BuildStatus.of(b, "2026-01-01T00:00:00Z")
    st.set_step("customize", "Failed", "CustomizationFailed", "exit 1")
    assert engine._abort_requested(engine.Run(make_engine(FakeKube({})), b, st))
    st.set_step("customize", "Failed", "Timeout", "too slow")
    assert not engine._abort_requested(engine.Run(make_engine(FakeKube({})), b, st))


def test_a_failed_step_is_saved_before_cleanup_starts() -> None:
    """A crash or an apiserver outage between the failure and its status write must not resume the
    step against resources cleanup already deleted (the chaos suite's lost failure reason)."""
    running = build("a", phase="Running", buildId="x", steps=[{"name": "preflight", "state": "Done"}])
    running["status"]["template"] = {"spec": {"source": {"type": "PlatformImage"}}}
    result = asyncio.run(engine.advance(make_engine(FakeKube(objects(running))), running))  # no template
    steps = {s["name"]: s["state"] for s in result.status["steps"]}
    assert steps["staging"] == "Failed" and "cleanup" not in steps, steps
    assert "ImageTemplate t no longer exists" in result.status["message"]
    assert result.requeue == 0.0  # written now; cleanup follows in the next round


def _in_cleanup(**spec: Any) -> dict[str, Any]:
    """A build whose steps are all settled and whose cleanup runs (nothing recorded to delete)."""
    settled = [{"name": n, "state": "Done"} for n in ("preflight", "staging", "network", "buildvm")]
    settled += [{"name": n, "state": "Done"} for n in ("builder", "customize", "validate")]
    settled += [{"name": "optimize", "state": "Skipped"}, {"name": "distribute", "state": "Done"}]
    b = build("a", phase="Running", buildId="x", steps=[*settled, {"name": "cleanup", "state": "Running"}])
    b["status"]["template"] = {"spec": {"source": {"type": "PlatformImage"}}}
    b["spec"].update(spec)
    return b


def test_cancel_during_cleanup_keeps_the_outcome_the_build_had() -> None:
    """The image is distributed: a late cancel must not report Canceled (cleanup runs either way)."""
    late = _in_cleanup(cancel=True)
    result = asyncio.run(engine.advance(make_engine(FakeKube(objects(late))), late))
    assert result.status["phase"] == "Succeeded" and result.requeue is None
    failed = _in_cleanup(cancel=True)
    failed["status"]["steps"][5]["state"] = "Failed"  # customize
    result = asyncio.run(engine.advance(make_engine(FakeKube(objects(failed))), failed))
    assert result.status["phase"] == "Failed"


def test_cancel_while_a_step_runs_cancels() -> None:
    running = _in_cleanup(cancel=True)
    running["status"]["steps"][8]["state"] = "Running"  # distribute
    running["status"]["steps"][9]["state"] = "Pending"  # cleanup
    result = asyncio.run(engine.advance(make_engine(FakeKube(objects(running))), running))
    assert result.status["phase"] == "Canceled"
