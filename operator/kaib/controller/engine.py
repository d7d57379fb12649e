"""The build's phase machine: Queued -> Running -> (Canceling) -> a terminal phase.

`advance(engine, build)` does one short round of work and returns the new status, the events to
emit and when to come back (None: the build is finished). Steps that finish at once are chained in
the same round, so a fast Azure (the sandbox) costs no extra status writes or waits.

Failure handling, as AIB: a failing step fails the build and cleanup runs (errorHandling `cleanup`,
the default); with `abort`, a customizer or validator failure keeps every resource for debugging
and the message lists them. A validation failure with continueDistributeOnFailure still
distributes, and ends PartiallySucceeded. Cancel and timeout go through cleanup too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kaib.api.defaults import spec_hash
from kaib.api.manifest import InvalidManifest, parse_template_spec
from kaib.azure.async_step import now_rfc3339
from kaib.azure.naming import build_id
from kaib.controller import distribution, optimize, preflight, queue, staging, steps
from kaib.controller.buildstatus import CONDITION, BuildStatus
from kaib.controller.conditions import get_condition
from kaib.controller.kube import BUILDS, TEMPLATES
from kaib.controller.run_context import Engine, Event, Run
from kaib.controller.stepresult import StepResult

log = logging.getLogger(__name__)

MAX_CHAINED = 12  # bound on the rounds of work in one call (a failure then the finish chain)

StepFn = Callable[[Run], Awaitable[StepResult]]
SIMPLE_STEPS: dict[str, StepFn] = {
    "preflight": preflight.preflight,
    "staging": staging.staging,
    "network": steps.network,
    "buildvm": steps.buildvm,
    "builder": steps.builder,
    "optimize": optimize.optimize,
    "distribute": distribution.distribute,
}
STARTED = {
    "preflight": "checking references, providers and quotas",
    "staging": "preparing the staging resource group and storage account",
    "network": "creating the build network",
    "buildvm": "creating the build VM",
    "builder": "starting the builder container group",
    "customize": "customizing the image",
    "validate": "validating the image",
    "optimize": "optimizing the image for VM boot (optimize.vmBoot)",
    "distribute": "distributing the image",
    "cleanup": "deleting the build's resources",
}


@dataclass(frozen=True)
class Advance:
    status: dict[str, Any]
    requeue: float | None  # None: finished, nothing more to do
    events: tuple[Event, ...] = ()


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def advance(engine: Engine, build: Mapping[str, Any]) -> Advance:
    status = BuildStatus.of(build, now_rfc3339())
    run = Run(engine, build, status)
    if status.terminal:
        return Advance(status.data, None)
    if not status.phase:
        status.init(build_id(str(build["metadata"]["uid"])))
        run.event("Queued", f"build {status.data['buildId']} queued for template {run.template_name}")
        return Advance(status.data, 0.0, tuple(run.events))
    cancel = bool((build.get("spec") or {}).get("cancel"))
    if status.phase == "Queued":
        return await _queued(run, cancel)
    if status.phase == "Running" and cancel and _outcome_open(run):
        status.data["phase"] = "Canceling"
        status.working("Canceling", "canceled (spec.cancel); deleting the build's resources")
        run.event("Canceling", "canceled by spec.cancel; cleaning up")
    elif status.phase == "Running" and _timed_out(run) and status.step_state("cleanup") != "Running":
        minutes = steps.timeout_minutes(run.spec)
        current = status.current_step() or "cleanup"
        _fail(
            run,
            current,
            f"the build exceeded buildTimeoutInMinutes ({minutes} min) during step {current}; "
            "raise buildTimeoutInMinutes or look at the logs for what took so long",
            "Timeout",
        )
    return await _work(run)


def _outcome_open(run: Run) -> bool:
    """Whether a cancel still changes how the build ends: not once every step settled or one failed
    (cleanup has begun or is next). The image is then distributed, or the build failed, and the
    phase must say so; cleanup deletes the same resources either way."""
    status = run.status
    return (
        status.step_state("cleanup") == "Pending"
        and status.current_step() is not None
        and not (_blocking_failures(run))
    )


def _timed_out(run: Run) -> bool:
    start = run.status.data.get("startTime")
    if not start:
        return False
    deadline = _parse_time(str(start)) + timedelta(minutes=steps.timeout_minutes(run.spec))
    return datetime.now(UTC) > deadline


# -- queueing -------------------------------------------------------------------------------------


async def _queued(run: Run, cancel: bool) -> Advance:
    status = run.status
    if cancel:
        status.finish("Canceled", "canceled before it started; nothing was created")
        run.event("Canceled", "canceled while queued")
        return Advance(status.data, None, tuple(run.events))
    engine = run.engine
    # The template is read outside the admission lock: only the decision and the start need it.
    template = await engine.kube.get(TEMPLATES, run.namespace, run.template_name)
    if template is None:
        status.working("Queued", f"waiting for ImageTemplate {run.template_name} to exist")
        return Advance(status.data, engine.settings.queued_poll * 5, tuple(run.events))
    try:
        parse_template_spec(template.get("spec") or {})
    except InvalidManifest as exc:
        problems = "; ".join(f"{path}: {problem}" for path, problem in exc.problems)
        message = f"ImageTemplate {run.template_name} is invalid: {problems}; fix it and create a new build"
        status.finish("Failed", message)
        run.event("Failed", message, warning=True)
        return Advance(status.data, None, tuple(run.events))
    blocker = await _admit(run)
    if blocker:
        status.working("Queued", blocker)
        return Advance(status.data, engine.settings.queued_poll, tuple(run.events))
    spec = dict(template.get("spec") or {})
    status.data["template"] = {
        "name": run.template_name,
        "generation": template["metadata"].get("generation"),
        "hash": spec_hash(spec),
        "spec": spec,
    }
    run.__dict__.pop("spec", None)  # forget a spec cached before the snapshot existed
    status.data.update(phase="Running", subState="Building", startTime=status.now)
    status.working("Running", "started")
    # Written now: the reservation holds the slot only until the index shows this build Running.
    try:
        await engine.kube.patch_status(BUILDS, run.namespace, run.name, status.data)
    except BaseException:
        engine.reservations.discard(str(run.build["metadata"]["uid"]))
        raise
    run.event(
        "Started",
        f"building template {run.template_name} (generation {status.data['template']['generation']})",
    )
    return await _work(run)


async def _admit(run: Run) -> str | None:
    """Why the build must wait; or None, and a slot is reserved for it. One build decides at a time:
    two deciding at once against the same (lagging) index would both take the last slot."""
    async with run.engine.admission:
        blocker = await _blocker(run)
        if blocker is None:
            key, me = queue.entry_of(run.build)
            run.engine.reservations.add(key, me.uid)
        return blocker


async def _blocker(run: Run) -> str | None:
    """Why this build must wait: another build of its template is active or ahead, or the global limit."""
    engine = run.engine
    index = engine.queue_index
    if index is None:  # no kopf index (unit tests): build the same view from a list
        namespaces = engine.settings.namespaces
        if namespaces:  # namespaced RBAC: list only what the operator watches
            builds = [b for ns in namespaces for b in await engine.kube.list(BUILDS, ns)]
        else:
            builds = await engine.kube.list(BUILDS)
        index = queue.index_of(builds)
    key, me = queue.entry_of(run.build)
    same, active = engine.reservations.view(index, key)
    return queue.blocker(me, run.template_name, same, active, engine.settings.max_active)


# -- running --------------------------------------------------------------------------------------


async def _work(run: Run) -> Advance:
    status = run.status
    for _ in range(MAX_CHAINED):
        if status.phase == "Canceling" or _blocking_failures(run) or status.current_step() is None:
            return await _finish(run)
        name = status.current_step()
        assert name is not None
        if name == "optimize" and not optimize.enabled(run.spec):
            status.set_step(name, "Skipped", "Skipped", "optimize.vmBoot is not Enabled")
            continue
        if status.step_state(name) != "Running":
            status.set_step(name, "Running", "Creating" if name in SIMPLE_STEPS else "Waiting", STARTED[name])
            status.working(status.data.get("subState") or "Running", STARTED[name])
            run.event(name.capitalize(), STARTED[name])
        if name in SIMPLE_STEPS:
            result = await SIMPLE_STEPS[name](run)
        else:
            result = await _follow_builder(run)
        if result.state == "waiting":
            if result.message:
                status.data["message"] = f"{STARTED[name]}: {result.message}"
            return Advance(status.data, max(result.requeue, 0.05), tuple(run.events))
        if result.state == "failed":
            # The builder may end while the engine still follows customize: a failed validator fails
            # validate, not the customization that succeeded.
            failed = "validate" if result.reason == "ValidationFailed" else name
            _fail(run, failed, result.message, result.reason or "Failed")
            # Save the failure before cleanup deletes anything: a lost write (a crash, an apiserver
            # outage) would otherwise resume the step against half-deleted resources and report that.
            return Advance(status.data, 0.0, tuple(run.events))
        if status.step_state(name) == "Running":  # the builder steps may have settled it already
            status.set_step(name, "Done", "Succeeded", f"{name} done")
            _after_done(run, name)
        # Write the status after every finished step (come back at once): what a step recorded,
        # e.g. the staging group, must be saved before the next step creates anything.
        return Advance(status.data, 0.0, tuple(run.events))
    return Advance(status.data, 0.05, tuple(run.events))


def _after_done(run: Run, name: str) -> None:
    spec = run.spec
    validate = spec.get("validate") or {}
    if name == "builder" and validate.get("sourceValidationOnly"):
        run.status.set_step("customize", "Skipped", "Skipped", "sourceValidationOnly: no customization")
    customized = run.status.step_state("customize") in ("Done", "Skipped")
    if name in ("builder", "customize") and not steps.has_validators(spec) and customized:
        run.status.set_step("validate", "Skipped", "Skipped", "no inVMValidations")


def _blocking_failures(run: Run) -> list[str]:
    """Failed steps that stop the build: all but a validation under continueDistributeOnFailure."""
    failed = run.status.failed_steps()
    if (run.spec.get("validate") or {}).get("continueDistributeOnFailure"):
        failed = [f for f in failed if f != "validate"]
    return failed


def _fail(run: Run, step: str, message: str, reason: str) -> None:
    status = run.status
    status.set_step(step, "Failed", reason, message)
    status.data["message"] = message
    run.event(f"{step.capitalize()}Failed", message, warning=True)
    log.info("build %s/%s: %s failed: %s", run.namespace, run.name, step, message)


async def _follow_builder(run: Run) -> StepResult:
    """customize and validate: the builder runs both; its container state and result.json tell."""
    status = run.status
    progress = await steps.follow(run)
    if isinstance(progress, StepResult):
        return progress
    result = progress.result
    current = status.current_step()
    if (
        current == "customize"
        and result.customization_done
        and (progress.finished or steps.has_validators(run.spec))
    ):
        status.set_step("customize", "Done", "Succeeded", "customization done")
        _after_done(run, "customize")
        if status.current_step() == "validate":
            status.set_step("validate", "Running", "Waiting", STARTED["validate"])
    if not progress.finished:
        return StepResult.wait(run.engine.settings.follow_poll)
    if result.status == "Succeeded":
        for name in ("customize", "validate"):
            if status.step_state(name) not in ("Done", "Skipped"):
                status.set_step(name, "Done", "Succeeded", f"{name} done")
                _after_done(run, name)
        return StepResult.done()
    failed = "validate" if result.failed_phase == "validate" else "customize"
    what = "validation" if failed == "validate" else "customization"
    message = (
        f"{what} failed: {result.message or 'the builder reported a failure'}; {steps.log_hint(run, what)}"
    )
    if failed == "validate":
        if status.step_state("customize") != "Done":
            status.set_step("customize", "Done", "Succeeded", "customization done")
        if not (run.spec.get("validate") or {}).get("continueDistributeOnFailure"):
            return StepResult("failed", 0.0, message, "ValidationFailed")  # _work fails validate
        status.set_step("validate", "Failed", "Failed", message)
        status.data["message"] = message
        run.event("ValidateFailed", message, warning=True)
        return StepResult.done()  # distribute anyway; the build ends PartiallySucceeded
    return StepResult("failed", 0.0, message, "CustomizationFailed")


# -- finishing ------------------------------------------------------------------------------------


def _abort_requested(run: Run) -> bool:
    """errorHandling abort applies to a customizer or validator that failed, not to a timeout."""
    handling = run.spec.get("errorHandling") or {}
    conditions = run.status.data.get("conditions")
    failed = {
        name
        for name in run.status.failed_steps()
        if (get_condition(conditions, CONDITION[name] or "") or {}).get("reason") != "Timeout"
    }
    return ("customize" in failed and handling.get("onCustomizerError") == "abort") or (
        "validate" in failed and handling.get("onValidationError") == "abort"
    )


async def _finish(run: Run) -> Advance:
    status = run.status
    canceling = status.phase == "Canceling"
    if not canceling and status.failed_steps() and _abort_requested(run):
        kept = steps.kept_resources(run)
        for rid in kept:
            status.record_resource(rid, "", "", "Kept")
        status.set_step("cleanup", "Skipped", "Kept", "errorHandling abort: resources kept for debugging")
        message = (
            f"{status.failure_message()}. errorHandling is abort: the build's resources are kept for "
            f"debugging in {run.staging_group} ({len(kept)} resources; delete the ImageBuild to remove them)"
        )
        status.finish("Failed", message)
        run.event("Failed", message, warning=True)
        return Advance(status.data, None, tuple(run.events))
    if status.step_state("cleanup") != "Running":
        status.set_step("cleanup", "Running", "Deleting", STARTED["cleanup"])
        if status.phase == "Running":
            status.data["subState"] = "CleaningUp"
        run.event("CleaningUp", STARTED["cleanup"])
    result = await steps.cleanup(run)
    if result.state != "done":
        if result.message:
            status.data["message"] = f"cleaning up: {result.message}"
        return Advance(status.data, max(result.requeue, 0.05), tuple(run.events))
    status.set_step("cleanup", "Done", "Deleted", "the build's resources are deleted")
    phase, message = _outcome(run)
    status.finish(phase, message)
    run.event(phase, message, warning=phase != "Succeeded")
    return Advance(status.data, None, tuple(run.events))


def _outcome(run: Run) -> tuple[str, str]:
    status = run.status
    if status.phase == "Canceling":
        return "Canceled", "canceled; the build's resources are deleted"
    failed = status.failed_steps()
    outputs = ", ".join(
        str(o.get("artifactId") or o.get("artifactUri")) for o in status.data.get("runOutputs") or []
    )
    if failed == ["validate"] and status.step_state("distribute") == "Done":
        return (
            "PartiallySucceeded",
            f"{status.failure_message()}; distributed anyway (continueDistributeOnFailure): {outputs}",
        )
    if failed:
        if not status.data.get("stagingResourceGroup"):
            return "Failed", f"{status.failure_message()}; nothing was created"
        return "Failed", f"{status.failure_message()}; the build's resources are deleted{_distributed(run)}"
    return "Succeeded", f"image built: {outputs}" if outputs else "image built"


def _distributed(run: Run) -> str:
    """Artifacts a failed build (say, timed out while distributing) started: the user's, as in AIB."""
    outputs = run.status.data.get("runOutputs") or []
    if not outputs:
        return ""
    # A VHD output has only an artifactUri.
    made = ", ".join(
        f"{o.get('artifactId') or o.get('artifactUri')} ({o.get('provisioningState')})" for o in outputs
    )
    return (
        f"; distribution had begun: {made}; these are yours to keep or delete "
        "(one still Creating may yet appear in Azure)"
    )


# -- deletion -------------------------------------------------------------------------------------


async def delete(engine: Engine, build: Mapping[str, Any]) -> Advance:
    """The ImageBuild is being deleted: clean up whatever it created, whatever its phase."""
    status = BuildStatus.of(build, now_rfc3339())
    run = Run(engine, build, status)
    if not status.data.get("buildId") or not status.data.get("template"):
        return Advance(status.data, None)  # never started: nothing in Azure
    if not status.data.get("stagingResourceGroup"):
        # Started, but the staging group was not recorded (a crash mid-step): find it the way staging does.
        group = await staging.find_staging_group(run)
        if group is None:
            return Advance(status.data, None)
        status.data["stagingResourceGroup"] = group
    if status.step_state("cleanup") == "Done":
        return Advance(status.data, None)
    result = await steps.cleanup(run)
    if result.state != "done":
        status.data["message"] = f"deleting: {result.message or 'waiting for Azure'}"
        return Advance(status.data, max(result.requeue, 0.05), tuple(run.events))
    status.set_step("cleanup", "Done", "Deleted", "the build's resources are deleted")
    return Advance(status.data, None, tuple(run.events))
