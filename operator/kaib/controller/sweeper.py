"""The orphan sweeper's I/O: list, ask `orphans.plan`, delete, report (event, log line, metric).

One sweep: list the live ImageTemplates and ImageBuilds (for the subscriptions to look in), list
what carries kaib's ownership tag in those subscriptions (resources and resource groups, ARM's
`tagName eq` filter), list the live objects again (Azure first, then Kubernetes: see orphans.py),
list the full contents of the groups concerned, plan, then delete wave by wave through the async
step (never blocking the event loop, InUse and throttling retried, long-running operations kept in
memory across rounds); an exported disk's access is revoked before it, or its VM, is deleted. A
sweep that cannot list Kubernetes deletes nothing.

Reporting: a log line per deleted resource, `kaib_orphans_removed_total{resource_type}`, and one
Kubernetes event per former owner, on its ImageTemplate when that exists, else on its Namespace
(the owner itself is gone, so there is nothing closer to attach it to).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError

from kaib import metrics
from kaib.azure import async_step, compute
from kaib.azure import spec as t
from kaib.azure.arm import Arm, to_rest
from kaib.azure.async_step import Outcome, SavedOperation, StepSettings
from kaib.azure.clients import AzureClients
from kaib.azure.errors import classify
from kaib.azure.naming import TAG_MANAGED_BY
from kaib.azure.spec import ResourceSpec, parse_resource_id
from kaib.controller import orphans, vhd
from kaib.controller.kube import BUILDS, GROUP, TEMPLATES, VERSION, Kube
from kaib.controller.orphans import Found, Orphan, Sweep

log = logging.getLogger(__name__)

TAG_FILTER = f"tagName eq '{TAG_MANAGED_BY}'"
DEFAULT_INTERVAL = 300.0
DEFAULT_GRACE = 900.0


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `15m` or `2h`."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 15m, 2h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


@dataclass(frozen=True)
class SweeperSettings:
    interval: float = DEFAULT_INTERVAL  # between sweeps; 0 turns the sweeper off
    grace: float = DEFAULT_GRACE  # an orphan is deleted after being seen orphaned this long
    namespaces: tuple[str, ...] = ()  # the operator's namespace patterns; empty: all
    subscriptions: tuple[str, ...] = ()  # looked in besides those of live templates and the default
    delete_budget: float = 600.0  # longest time one sweep spends on one wave of deletes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument(
        "--orphan-interval",
        type=parse_duration,
        default=env.get("KAIB_ORPHAN_INTERVAL_SECONDS") or str(DEFAULT_INTERVAL),  # parsed by `type`
        help="how often to look for orphaned Azure resources, e.g. 5m; 0 turns the sweeper off "
        "(env KAIB_ORPHAN_INTERVAL_SECONDS; default 300 s)",
    )
    parser.add_argument(
        "--orphan-grace",
        type=parse_duration,
        default=env.get("KAIB_ORPHAN_GRACE_SECONDS") or str(DEFAULT_GRACE),
        help="delete an orphan only after it has been seen orphaned this long, e.g. 15m "
        "(env KAIB_ORPHAN_GRACE_SECONDS; default 900 s)",
    )


def settings_from_args(args: argparse.Namespace) -> SweeperSettings:
    extra = tuple(s for s in os.environ.get("KAIB_ORPHAN_SUBSCRIPTIONS", "").replace(",", " ").split() if s)
    return SweeperSettings(
        interval=float(args.orphan_interval),
        grace=float(args.orphan_grace),
        namespaces=tuple(getattr(args, "namespace", None) or ()),
        subscriptions=extra,
    )


@dataclass(frozen=True)
class Report:
    removed: tuple[Orphan, ...] = ()
    failed: tuple[tuple[Orphan, str], ...] = ()
    waiting: tuple[Orphan, ...] = ()
    kept: tuple[tuple[Orphan, str], ...] = ()
    next_ripe: float | None = None  # seconds until the first waiting orphan is due


@dataclass
class Sweeper:
    azure: AzureClients
    kube: Kube
    settings: SweeperSettings
    step: StepSettings = field(default_factory=StepSettings)
    sightings: orphans.Sightings = field(default_factory=orphans.Sightings)
    operations: dict[str, SavedOperation] = field(default_factory=dict)

    async def run(self) -> None:
        """Sweep forever; a failed sweep is logged and tried again at the next interval."""
        log.info("orphan sweeper: every %.0f s, grace %.0f s", self.settings.interval, self.settings.grace)
        while True:
            delay = self.settings.interval
            try:
                report = await self.sweep_once()
                if report.next_ripe is not None:
                    delay = min(delay, max(report.next_ripe, 0.5))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("orphan sweep failed; trying again in %.0f s", delay)
            await asyncio.sleep(delay)

    async def sweep_once(self) -> Report:
        loop = asyncio.get_running_loop()
        builds, templates = await self._live_objects()
        subscriptions = self._subscriptions(templates)
        resources: list[Found] = []
        groups: list[Found] = []
        for sub in subscriptions:
            try:
                found = await self._tagged(sub)
            except Exception as exc:  # not looking there only means finding no orphans there
                log.warning("orphan sweeper: cannot list subscription %s, skipped: %s", sub, exc)
                continue
            resources += found[0]
            groups += found[1]
        # Kubernetes after Azure: an owner that made a listed resource shows up here unless it is gone.
        builds, templates = await self._live_objects()
        live = orphans.live_objects(builds, templates, self.azure.settings.default_subscription_id or "")
        candidates = orphans.candidates(resources, groups, live, self.settings.namespaces)
        contents = {key: await self._contents(key) for key in orphans.groups_to_inspect(candidates)}
        now = loop.time()
        sweep = orphans.plan(candidates, contents, live, self.sightings, now, self.settings.grace)
        for orphan, why in sweep.kept:
            log.debug("orphan %s of %s kept: %s", orphan.resource.id, orphan.owner_ref, why)
        removed, failed = await self._delete(sweep)
        await self._report(removed, failed, templates)
        next_ripe = None
        if sweep.waiting:
            first = min(self.sightings.first.get(o.resource.key, now) for o in sweep.waiting)
            next_ripe = first + self.settings.grace - loop.time()
            log.info(
                "orphan sweeper: %d orphaned resources wait for their grace period (next in %.0f s)",
                len(sweep.waiting),
                max(next_ripe, 0),
            )
        return Report(tuple(removed), tuple(failed), sweep.waiting, sweep.kept, next_ripe)

    # -- listing ----------------------------------------------------------------------------------

    async def _live_objects(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every ImageBuild and ImageTemplate the operator watches; raises when the API does."""
        exact = [p for p in self.settings.namespaces if not any(c in p for c in "*?[!")]
        if self.settings.namespaces and len(exact) == len(self.settings.namespaces):
            builds, templates = [], []
            for ns in exact:  # namespaced RBAC may forbid listing cluster-wide
                builds += await self.kube.list(BUILDS, ns)
                templates += await self.kube.list(TEMPLATES, ns)
            return builds, templates
        return await self.kube.list(BUILDS), await self.kube.list(TEMPLATES)

    def _subscriptions(self, templates: Sequence[Mapping[str, Any]]) -> list[str]:
        subs = {self.azure.settings.default_subscription_id or "", *self.settings.subscriptions}
        for tpl in templates:
            subs.add(str(((tpl.get("spec") or {}).get("azure") or {}).get("subscriptionId") or ""))
        return sorted(s for s in subs if s)

    async def _tagged(self, sub: str) -> tuple[list[Found], list[Found]]:
        """Resources and resource groups carrying kaib's ownership tag in one subscription."""
        resource = self.azure.for_subscription(sub).resource
        resources = [Found.of(to_rest(r) or {}) async for r in resource.resources.list(filter=TAG_FILTER)]
        groups = [Found.of(to_rest(g) or {}) async for g in resource.resource_groups.list(filter=TAG_FILTER)]
        return resources, groups

    async def _contents(self, key: str) -> list[Found]:
        sub, _, group = key.partition("/")
        clients = self.azure.for_subscription(sub)
        try:
            return [
                Found.of(to_rest(r) or {})
                async for r in clients.resource.resources.list_by_resource_group(group)
            ]
        except ResourceNotFoundError:
            return []

    # -- deleting ---------------------------------------------------------------------------------

    async def _delete(self, sweep: Sweep) -> tuple[list[Orphan], list[tuple[Orphan, str]]]:
        removed: list[Orphan] = []
        failed: list[tuple[Orphan, str]] = []
        for wave in sweep.waves:
            outcomes = await asyncio.gather(
                *(self._delete_one(o, orphans.disks_to_revoke(o, sweep.deletes)) for o in wave)
            )
            for orphan, outcome in zip(wave, outcomes, strict=True):
                if outcome.done:
                    removed.append(orphan)
                else:
                    what = f"deleting orphaned {orphan.resource.id}"
                    reason = outcome.failure.describe(what) if outcome.failure else f"{what}: still waiting"
                    failed.append((orphan, reason))
            if failed:
                break  # what depends on a resource still there waits for the next sweep
        return removed, failed

    async def _delete_one(self, orphan: Orphan, disks: Sequence[Orphan] = ()) -> Outcome:
        """Delete one orphan, after revoking the access of any of `disks` that is exported."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.delete_budget
        spec = resource_spec(orphan.resource)
        ops = Arm(self.azure.for_subscription(spec.subscription_id))
        key = orphan.resource.key
        while True:
            # Before every attempt: a grant still running at the last one may have exported a disk since.
            outcome = await self._revoke(disks)
            if outcome.done:
                outcome = await async_step.delete(ops, spec, self.operations.get(key), self.step)
                self._keep(key, outcome)
            wait = outcome.requeue_after or self.step.requeue
            if outcome.state != "waiting" or loop.time() + wait > deadline:
                return outcome
            await asyncio.sleep(wait)

    async def _revoke(self, disks: Sequence[Orphan]) -> Outcome:
        """Done when none of `disks` is exported any more (a GET first: most never were)."""
        for disk in disks:
            spec = resource_spec(disk.resource)
            clients = self.azure.for_subscription(spec.subscription_id)
            key = f"{disk.resource.key}/{vhd.REVOKE}"
            saved = self.operations.get(key)
            if saved is None:
                try:
                    body = await Arm(clients).get(spec)
                except Exception as exc:
                    failure = classify(exc)
                    state: Literal["waiting", "failed"] = "waiting" if failure.retryable else "failed"
                    return Outcome(state, requeue_after=failure.retry_after, failure=failure)
                if not vhd.exported(body):
                    continue
                log.info("orphan sweeper: revoking the access to the exported disk %s", disk.resource.id)
            revoke = compute.DiskAccess(clients).revoke(spec)
            outcome = await async_step.action(revoke, spec, vhd.REVOKE, saved, self.step)
            self._keep(key, outcome)
            if not outcome.done:
                return outcome
        return Outcome("done")

    def _keep(self, key: str, outcome: Outcome) -> None:
        """Remember a long-running operation across rounds and sweeps (in memory)."""
        if outcome.operation is not None:
            self.operations[key] = outcome.operation
        else:
            self.operations.pop(key, None)

    # -- reporting --------------------------------------------------------------------------------

    async def _report(
        self,
        removed: Sequence[Orphan],
        failed: Sequence[tuple[Orphan, str]],
        templates: Sequence[Mapping[str, Any]],
    ) -> None:
        by_owner: dict[tuple[str, str, str], list[Orphan]] = defaultdict(list)
        for o in removed:
            metrics.orphan_removed(o.resource.type)
            log.info("orphan sweeper: deleted %s, left behind by %s", o.resource.id, o.owner_ref)
            by_owner[(o.namespace, o.owner_ref, o.template)].append(o)
        for o, why in failed:
            log.warning("orphan sweeper: %s (left behind by %s)", why, o.owner_ref)
        live_templates = {
            (str(tp["metadata"]["namespace"]), str(tp["metadata"]["name"])): tp for tp in templates
        }
        for (ns, owner_ref, template), items in by_owner.items():
            names = ", ".join(
                sorted(f"{parse_resource_id(o.resource.id).get('name') or o.resource.group}" for o in items)
            )
            message = (
                f"deleted {len(items)} orphaned Azure resources left behind by {owner_ref}, "
                f"which no longer exists: {names}"
            )
            try:
                await self._event(ns, live_templates.get((ns, template)), "OrphansRemoved", message)
            except Exception:
                log.exception("orphan sweeper: could not post the event for %s", owner_ref)

    async def _event(
        self, namespace: str, template: Mapping[str, Any] | None, reason: str, message: str
    ) -> None:
        if template is not None:
            meta = template["metadata"]
            involved = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ImageTemplate",
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta.get("uid"),
            }
        else:
            # The apiserver wants involvedObject.namespace to match the event's; `kubectl get events -n`
            # then shows it beside the namespace's other events.
            involved = {"apiVersion": "v1", "kind": "Namespace", "name": namespace, "namespace": namespace}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"generateName": "kaib-orphans-", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1000],
            "type": "Normal",
            "source": {"component": "kaib"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.kube.create_event(namespace, body)


def resource_spec(found: Found) -> ResourceSpec:
    """A ResourceSpec naming a listed resource, for the async step's delete."""
    parts = parse_resource_id(found.id)
    sub, group = parts.get("subscription", ""), parts.get("resourceGroup", "")
    if found.type == t.RESOURCE_GROUP:
        return ResourceSpec(t.RESOURCE_GROUP, sub, group, group)
    parents = tuple(p for p in parts.get("parents", "").split("/") if p)
    return ResourceSpec(found.type, sub, group, parts.get("name", ""), parents=parents)


def start(
    azure: AzureClients, kube: Kube, settings: SweeperSettings, step: StepSettings
) -> asyncio.Task[None] | None:
    """Start sweeping in the background (None when turned off); cancel the task to stop."""
    if settings.interval <= 0:
        log.info("orphan sweeper: off")
        return None
    sweeper = Sweeper(azure, kube, settings, step)
    return asyncio.get_running_loop().create_task(sweeper.run(), name="kaib-orphan-sweeper")
