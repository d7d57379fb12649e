"""What a build step works with: the build, its status, the template snapshot, Azure and Kubernetes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kaib.api.defaults import spec_with_defaults
from kaib.azure.arm import Arm, ResourceOps
from kaib.azure.async_step import StepSettings
from kaib.azure.cache import SingleFlight
from kaib.azure.clients import AzureClients, ServiceClients
from kaib.azure.context import BuildContext
from kaib.azure.naming import BuildNames, Owner
from kaib.azure.spec import ResourceSpec, parse_resource_id
from kaib.controller.blobs import LogStore, log_store
from kaib.controller.buildstatus import BuildStatus
from kaib.controller.kube import Kube
from kaib.controller.queue import QueueIndex, Reservations

DEFAULT_BUILDER_IMAGE = "kaib-builder:latest"


@dataclass(frozen=True)
class EngineSettings:
    step: StepSettings = field(default_factory=StepSettings)
    queued_poll: float = 5.0  # how often a Queued build looks for its turn
    follow_poll: float = 5.0  # how often the builder's container state is read
    max_active: int = 10  # builds Running or Canceling at once, across all templates
    builder_image: str = DEFAULT_BUILDER_IMAGE
    builder_command: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()  # watched namespaces (no globs); empty: cluster-wide

    @classmethod
    def from_env(
        cls,
        fast: bool,
        max_active: int = 10,
        env: Mapping[str, str] | None = None,
        namespaces: tuple[str, ...] = (),
    ) -> EngineSettings:
        """`fast` for the sandbox: sub-second latencies deserve sub-second polls."""
        env = os.environ if env is None else env
        command = tuple(env.get("KAIB_BUILDER_COMMAND", "").split()) or ()
        step = StepSettings(wait=1.0, requeue=0.5, error_requeue=2.0) if fast else StepSettings()
        return cls(
            step=step,
            queued_poll=1.0 if fast else 5.0,
            follow_poll=0.5 if fast else 5.0,
            max_active=max_active,
            builder_image=env.get("KAIB_BUILDER_IMAGE", DEFAULT_BUILDER_IMAGE),
            builder_command=command,
            # Globs cannot be listed one by one: then list cluster-wide (and need the RBAC for it).
            namespaces=() if any(c in "".join(namespaces) for c in "*?[!") else namespaces,
        )


@dataclass
class Engine:
    azure: AzureClients
    kube: Kube
    settings: EngineSettings
    admission: asyncio.Lock = field(default_factory=asyncio.Lock)  # one Queued build decides at a time
    # kopf's index of the watched builds (queue.index_entries), set at startup; None: list them.
    queue_index: QueueIndex | None = None
    reservations: Reservations = field(default_factory=Reservations)
    # Storage endpoint and key per account: read once, not on every poll of the builder.
    log_stores: dict[str, LogStore] = field(default_factory=dict)
    # Each running build's login Secret by build uid: kaib makes it once and never changes it, and
    # reading it every round cost 11 GETs per build. Dropped at cleanup and when the build is done.
    access_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    # Preflight's questions (providers, quota usages): builds asking at once share one read.
    shared_reads: SingleFlight[Any] = field(default_factory=SingleFlight)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Run:
    """One reconcile of one build."""

    engine: Engine
    build: Mapping[str, Any]
    status: BuildStatus
    events: list[Event] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.build["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.build["metadata"]["namespace"])

    @property
    def template_name(self) -> str:
        return str(((self.build.get("spec") or {}).get("templateRef") or {}).get("name") or "")

    @cached_property
    def spec(self) -> dict[str, Any]:
        """The template spec snapshotted at start, with AIB's defaults applied."""
        raw = ((self.status.data.get("template") or {}).get("spec")) or {}
        return spec_with_defaults(dict(raw)) if raw else {}

    @property
    def build_id(self) -> str:
        return str(self.status.data.get("buildId") or "")

    @property
    def subscription_id(self) -> str:
        return str((self.spec.get("azure") or {}).get("subscriptionId") or "")

    @property
    def location(self) -> str:
        return str((self.spec.get("azure") or {}).get("location") or "")

    @property
    def clients(self) -> ServiceClients:
        return self.engine.azure.for_subscription(self.subscription_id or None)

    def ops_for(self, spec: ResourceSpec) -> ResourceOps:
        return Arm(self.engine.azure.for_subscription(spec.subscription_id))

    @property
    def settings(self) -> StepSettings:
        return self.engine.settings.step

    @property
    def owner(self) -> Owner:
        return Owner(self.namespace, self.template_name, self.name, self.build_id)

    @property
    def staging_group(self) -> str:
        rid = str(self.status.data.get("stagingResourceGroup") or "")
        return parse_resource_id(rid).get("resourceGroup", "")

    @property
    def ctx(self) -> BuildContext:
        return BuildContext(
            subscription_id=self.subscription_id,
            location=self.location,
            staging_group=self.staging_group,
            names=BuildNames(self.build_id),
            owner=self.owner,
            managed_tags=dict(self.spec.get("managedResourceTags") or {}),
        )

    async def log_store(self, account: str) -> LogStore:
        key = f"{self.subscription_id}/{self.staging_group}/{account}".lower()
        store = self.engine.log_stores.get(key)
        if store is None:
            store = await log_store(self.clients, self.staging_group, account)
            self.engine.log_stores[key] = store
        return store

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))
