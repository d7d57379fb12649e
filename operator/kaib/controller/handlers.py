"""kopf handlers, kept thin: they fetch the object, call the engine, write status, emit events.

ImageBuild: one daemon per build drives `engine.advance` until the build is finished (a daemon, not
a retried create handler: it sees spec.cancel at once and never blocks deletion, kopf #936). The
delete handler runs cleanup until Azure answers 404 for everything; it only ever raises
TemporaryError, never PermanentError (kopf #640: that would drop the finalizer and leak).

ImageTemplate: validation into status (Ready, or Stalled with the reasons), autoRun, and deletion:
the template's builds are canceled and waited for (they need the staging group to clean up), then
the staging group is deleted (created by kaib) or emptied of what kaib put there (adopted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import kopf

from kaib import metrics
from kaib.azure import async_step
from kaib.azure.arm import Arm
from kaib.azure.async_step import StepSettings, now_rfc3339
from kaib.azure.spec import RESOURCE_GROUP, STORAGE_ACCOUNT, ResourceSpec, parse_resource_id
from kaib.controller import engine as build_engine
from kaib.controller import gauges, priority, queue, templates
from kaib.controller.kube import BUILDS, GROUP, TEMPLATES, VERSION, Kube
from kaib.controller.run_context import Engine

log = logging.getLogger(__name__)


@dataclass
class Memo:
    engine: Engine
    daemons: dict[str, asyncio.Event] = field(default_factory=dict)  # build uid -> set when its daemon exits
    views: dict[str, BuildView] = field(default_factory=dict)  # build uid -> its running daemon's view
    gauges: asyncio.Task[None] | None = None  # recounts the build gauges (a reference keeps it alive)
    new_first: priority.NewFirst = field(default_factory=priority.NewFirst)  # new builds' first rounds first


def _emit(body: Mapping[str, Any], events: Any) -> None:
    for event in events:
        kopf.event(cast(Any, dict(body)), type=event.type, reason=event.reason, message=event.message[:1000])


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach every handler to `registry` (no module-level global registry)."""

    @kopf.on.login(registry=registry)
    async def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
        # A private registry has none of kopf's default login handlers: kopf gets the credentials
        # kaib's own API calls use (kaib.controller.kubeauth); called again when they expire.
        state: Memo = memo.kaib
        return await state.engine.kube.credentials.connection_info()

    # On deletion kopf sets `stopped` and cancels the daemon only after cancellation_backoff: a round in
    # progress finishes and writes what it created before the delete handler cleans up.
    @kopf.daemon(
        GROUP, VERSION, BUILDS, registry=registry, cancellation_backoff=30.0, cancellation_timeout=10.0
    )
    async def build_daemon(
        stopped: kopf.DaemonStopped,
        body: kopf.Body,
        name: str,
        namespace: str | None,
        uid: str,
        memo: Any,
        **_: Any,
    ) -> None:
        assert namespace is not None  # namespaced resource
        state: Memo = memo.kaib
        done = state.daemons.setdefault(uid, asyncio.Event())
        done.clear()
        view = state.views[uid] = BuildView(body, namespace, name)
        first = not (body.get("status") or {}).get("phase")  # a new build: not yet recorded Queued
        try:
            while not stopped:
                if first:
                    turn: AbstractAsyncContextManager[None] = state.new_first.first_round()
                    first = False
                else:
                    await state.new_first.wait_turn()
                    turn = nullcontext()
                started = time.monotonic()
                try:
                    async with turn:
                        requeue = await _reconcile_build(state, view)
                    result = (
                        "success" if requeue is None else ("requeue" if requeue == 0 else "requeue_after")
                    )
                except Exception:
                    log.exception("build %s/%s: reconcile failed; retrying", namespace, name)
                    view.reread()
                    requeue = state.engine.settings.step.error_requeue
                    result = "error"
                metrics.observe_reconcile("imagebuild", result, time.monotonic() - started)
                if requeue is None:
                    return
                await pause(stopped, view.wake, requeue)
        finally:
            state.engine.access_secrets.pop(uid, None)  # finished, deleted or stopping: read it afresh
            if state.views.get(uid) is view:
                del state.views[uid]
            done.set()

    # Every watch event of a build (no change detection, no writes): a cancel wakes the build's daemon
    # at once instead of at its next requeue, which on Azure can be a minute away (Retry-After).
    @kopf.on.event(GROUP, VERSION, BUILDS, registry=registry)
    def build_event(uid: str, spec: kopf.Spec, memo: Any, **_: Any) -> None:
        view = memo.kaib.views.get(uid)
        if view is not None and spec.get("cancel") and not view.cancel_seen:
            view.wake.set()

    @kopf.on.delete(GROUP, VERSION, BUILDS, registry=registry)
    async def build_deleted(
        body: kopf.Body, uid: str, name: str, namespace: str | None, memo: Any, **_: Any
    ) -> None:
        assert namespace is not None
        state: Memo = memo.kaib
        daemon = state.daemons.get(uid)
        if daemon is not None and not daemon.is_set():
            try:
                await asyncio.wait_for(daemon.wait(), timeout=30)
            except TimeoutError:
                raise kopf.TemporaryError("waiting for the build's reconciler to stop", delay=2) from None
        build = await state.engine.kube.get(BUILDS, namespace, name) or dict(body)
        try:
            result = await build_engine.delete(state.engine, build)
        except Exception as exc:
            raise kopf.TemporaryError(f"cleanup failed, retrying: {exc}", delay=10) from exc
        if result.status != (build.get("status") or {}):
            await state.engine.kube.patch_status(BUILDS, namespace, name, result.status)
        _emit(build, result.events)
        if result.requeue is not None:
            raise kopf.TemporaryError(
                result.status.get("message") or "deleting the build's resources", delay=result.requeue
            )
        state.daemons.pop(uid, None)

    # kopf keeps this index of every watched build (and drops a build once it is gone): the gauges of
    # builds by phase and of saved operations are recounted from it, never from a list call.
    @kopf.index(GROUP, VERSION, BUILDS, id="kaib_build_gauges", registry=registry)
    def kaib_build_gauges(status: kopf.Status, **_: Any) -> dict[gauges.Key, int]:
        return gauges.index_entries(status)

    # The queue's view of every watched build (per template, and the active ones): a Queued build
    # decides from it whether it may start, without listing the builds (kaib.controller.queue).
    @kopf.index(GROUP, VERSION, BUILDS, id="kaib_build_queue", registry=registry)
    def kaib_build_queue(body: kopf.Body, **_: Any) -> dict[queue.Key, queue.Entry]:
        return queue.index_entries(body)

    @kopf.on.startup(registry=registry)
    async def ready(memo: Any, **kwargs: Any) -> None:
        metrics.start_heartbeat()
        metrics.set_readiness(lambda: True)
        state: Memo = memo.kaib
        # Startup runs before any build handler; kopf fills the index before those run too.
        state.engine.queue_index = kwargs["kaib_build_queue"]
        index: kopf.Index[gauges.Key, int] = kwargs["kaib_build_gauges"]  # kopf passes indices by name
        state.gauges = asyncio.get_running_loop().create_task(
            gauges.keep_published(index), name="kaib-gauges"
        )

    @kopf.on.resume(GROUP, VERSION, TEMPLATES, registry=registry)
    @kopf.on.create(GROUP, VERSION, TEMPLATES, registry=registry)
    @kopf.on.update(GROUP, VERSION, TEMPLATES, field="spec", registry=registry)
    async def template_changed(body: kopf.Body, patch: kopf.Patch, reason: str, memo: Any, **_: Any) -> None:
        with metrics.reconcile_timer("imagetemplate"):
            await _template_changed(body, patch, reason, memo)

    async def _template_changed(body: kopf.Body, patch: kopf.Patch, reason: str, memo: Any) -> None:
        state: Memo = memo.kaib
        status = templates.validation_status(dict(body), now_rfc3339())
        patch.status.update(status)
        if reason == "create":
            created = await templates.auto_run(state.engine.kube, dict(body))
            if created:
                # kopf.event, not kopf.info: posted whatever settings.posting.level (WARNING, see run.py)
                kopf.event(
                    cast(Any, dict(body)),
                    type="Normal",
                    reason="AutoRun",
                    message=f"created ImageBuild {created}",
                )

    @kopf.on.delete(GROUP, VERSION, TEMPLATES, registry=registry)
    async def template_deleted(
        body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any
    ) -> None:
        assert namespace is not None
        state: Memo = memo.kaib
        waiting = await templates.cancel_builds(state.engine.kube, namespace, name)
        if waiting:
            raise kopf.TemporaryError(
                f"waiting for builds to finish their cleanup: {', '.join(waiting)}", delay=2
            )
        done, message = await remove_staging(state.engine, dict(body))
        if not done:
            raise kopf.TemporaryError(message, delay=state.engine.settings.step.requeue)


@dataclass
class BuildView:
    """The build a daemon reconciles: metadata and spec from kopf's live body (the watch keeps it
    current: a cancel or a deletion shows there), the status as the daemon's own last write left it.

    While its daemon runs, the daemon is the only writer of a build's status, so the answer to its
    last status patch is the newest status there is, even before the watch event of that write comes
    back. Reading the build from the apiserver every round instead cost a GET per round (3,200 for
    200 builds) on the operator's busiest path. After a failed round (a write may or may not have
    landed) the next round reads the build from the apiserver."""

    body: kopf.Body
    namespace: str
    name: str
    status: dict[str, Any] | None = None  # from the last status write; None: the body's
    stale: bool = False  # read the build from the apiserver next round
    cancel_seen: bool = False  # the last round's build had spec.cancel
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # set: start the next round now

    def reread(self) -> None:
        self.status, self.stale = None, True

    async def current(self, kube: Kube) -> dict[str, Any] | None:
        """The build to reconcile now; None when it is gone."""
        self.wake.clear()  # what this round reads answers any wake so far; a later one stays set
        if self.stale:
            fresh = await kube.get(BUILDS, self.namespace, self.name)
            if fresh is None:
                return None
            self.status, self.stale = dict(fresh.get("status") or {}), False
        build = dict(self.body)  # kopf replaces its raw body on each event, never edits it in place
        if self.status is not None:
            build["status"] = self.status
        self.cancel_seen = bool((build.get("spec") or {}).get("cancel"))
        return build


async def pause(stopped: kopf.DaemonStopped, wake: asyncio.Event, seconds: float) -> None:
    """Until the next round is due: `seconds` passed, the daemon is stopped, or `wake` was set."""
    if wake.is_set():
        return
    waiting = [asyncio.ensure_future(stopped.wait(seconds)), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()


async def _reconcile_build(state: Memo, view: BuildView) -> float | None:
    """One round for one build; when to come back (None: finished or gone)."""
    namespace, name = view.namespace, view.name
    build = await view.current(state.engine.kube)
    if build is None or build["metadata"].get("deletionTimestamp"):
        return None
    result = await build_engine.advance(state.engine, build)
    decided = time.monotonic()  # the requeue counts from here: writing the status is part of the wait
    before = build.get("status") or {}
    if result.status != before:
        written = await state.engine.kube.patch_status(BUILDS, namespace, name, result.status)
        view.status = dict(written.get("status") or {})
        phase, sub = result.status.get("phase"), result.status.get("subState")
        if phase != before.get("phase") or sub != before.get("subState"):
            log.info("build %s/%s: %s/%s", namespace, name, phase, sub)
        if phase != before.get("phase") and phase != "Queued":
            await templates.record_last_build(state.engine.kube, build, result.status)
        _record_metrics(before, result.status)
    _emit(build, result.events)
    if result.requeue is None:
        return None
    return max(0.0, result.requeue - (time.monotonic() - decided))


def _seconds(start: Any, end: Any) -> float | None:
    try:
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        return (datetime.strptime(str(end), fmt) - datetime.strptime(str(start), fmt)).total_seconds()
    except ValueError:
        return None


def _record_metrics(before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """Steps that ended and a build that finished in this round."""
    ended = {s.get("name"): s for s in before.get("steps") or [] if s.get("endTime")}
    for step in after.get("steps") or []:
        if step.get("endTime") and step.get("name") not in ended and step.get("state") != "Skipped":
            seconds = _seconds(step.get("startTime"), step.get("endTime"))
            if seconds is not None:
                metrics.step_finished(str(step["name"]), seconds)
    phase = after.get("phase")
    if phase in metrics.OUTCOMES and phase != before.get("phase"):
        seconds = _seconds(after.get("startTime") or after.get("endTime"), after.get("endTime"))
        metrics.build_finished(str(phase), seconds or 0.0)


async def remove_staging(engine: Engine, template: Mapping[str, Any]) -> tuple[bool, str]:
    """Delete the staging group kaib created; from an adopted one, delete only kaib's storage account."""
    status = template.get("status") or {}
    rid = str(status.get("exactStagingResourceGroup") or "")
    if not rid:
        return True, ""
    parts = parse_resource_id(rid)
    sub, group = parts["subscription"], parts["resourceGroup"]
    arm = Arm(engine.azure.for_subscription(sub))
    if status.get("stagingResourceGroupOwnership") == "Adopted":
        account = str(status.get("storageAccount") or "")
        target = ResourceSpec(STORAGE_ACCOUNT, sub, group, account) if account else None
    else:
        target = ResourceSpec(RESOURCE_GROUP, sub, group, group)
    if target is None:
        return True, ""
    settings: StepSettings = engine.settings.step
    outcome = await async_step.delete(arm, target, None, settings)
    if outcome.state == "done":
        return True, ""
    message = (
        outcome.failure.describe(f"deleting {target.name}") if outcome.failure else f"deleting {target.name}"
    )
    return False, message
