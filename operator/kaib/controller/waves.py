"""Reconcile or delete waves of resource specs through the async step, recording each in status.

The specs of one wave are independent and run concurrently; a wave starts only when the previous
one is done. A resource recorded Created (or Deleted) is not asked about again within its step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kaib.azure import async_step
from kaib.azure.arm import ResourceOps
from kaib.azure.async_step import Outcome, StepSettings
from kaib.azure.spec import ResourceSpec
from kaib.controller.buildstatus import BuildStatus

KINDS = {
    "Microsoft.Network/virtualNetworks": "virtual network",
    "Microsoft.Network/networkSecurityGroups": "network security group",
    "Microsoft.Network/networkInterfaces": "network interface",
    "Microsoft.Network/loadBalancers": "load balancer",
    "Microsoft.Network/privateEndpoints": "private endpoint",
    "Microsoft.Network/privateLinkServices": "private link service",
    "Microsoft.Compute/virtualMachines": "virtual machine",
    "Microsoft.Compute/disks": "disk",
    "Microsoft.Compute/images": "managed image",
    "Microsoft.Compute/galleries/images/versions": "gallery image version",
    "Microsoft.ContainerInstance/containerGroups": "container group",
    "Microsoft.Resources/resourceGroups": "resource group",
    "Microsoft.Storage/storageAccounts": "storage account",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "blob container",
}


def describe(spec: ResourceSpec) -> str:
    return f"{KINDS.get(spec.type, spec.type)} {spec.name}"


@dataclass(frozen=True)
class WavesResult:
    state: str  # done | waiting | failed
    requeue: float = 0.0
    message: str = ""
    outcomes: dict[str, Outcome] | None = None  # by resource id, for the specs asked about this time


async def ensure(
    status: BuildStatus,
    waves: Sequence[Sequence[ResourceSpec]],
    ops_for: Callable[[ResourceSpec], ResourceOps],
    settings: StepSettings,
    record: bool = True,
) -> WavesResult:
    outcomes: dict[str, Outcome] = {}
    for wave in waves:
        pending = [s for s in wave if status.resource_state(s.id) != "Created"]
        if not pending:
            continue
        results = await asyncio.gather(
            *(async_step.reconcile(ops_for(s), s, status.saved_operation(s.id), settings) for s in pending)
        )
        outcomes.update(zip((s.id for s in pending), results, strict=True))
        waiting: list[float] = []
        for spec, outcome in zip(pending, results, strict=True):
            status.save_operation(spec.id, outcome.operation)
            if outcome.state == "done":
                if record:
                    status.record_resource(spec.id, spec.type, spec.step, "Created")
            elif outcome.state == "waiting":
                if record:
                    status.record_resource(spec.id, spec.type, spec.step, "Creating")
                waiting.append(settings.requeue if outcome.requeue_after is None else outcome.requeue_after)
            else:
                assert outcome.failure is not None
                message = outcome.failure.describe(f"creating {describe(spec)}")
                return WavesResult("failed", message=message, outcomes=outcomes)
        if waiting:
            retrying = [o.failure for o in results if o.failure is not None]
            message = retrying[0].describe("an Azure request") if retrying else ""
            return WavesResult("waiting", requeue=min(waiting), message=message, outcomes=outcomes)
    return WavesResult("done", outcomes=outcomes)


async def delete(
    status: BuildStatus,
    waves: Sequence[Sequence[ResourceSpec]],
    ops_for: Callable[[ResourceSpec], ResourceOps],
    settings: StepSettings,
) -> WavesResult:
    """Delete wave by wave. Never gives up: a fatal answer is reported and retried later, so that
    nothing is leaked (the message says what blocks the deletion)."""
    for wave in waves:
        pending = [s for s in wave if status.resource_state(s.id) != "Deleted"]
        if not pending:
            continue
        results = await asyncio.gather(
            *(async_step.delete(ops_for(s), s, status.saved_operation(s.id), settings) for s in pending)
        )
        waiting: list[float] = []
        problems: list[str] = []
        for spec, outcome in zip(pending, results, strict=True):
            status.save_operation(spec.id, outcome.operation)
            known = status.resource_state(spec.id) is not None
            if outcome.state == "done":
                if known:
                    status.record_resource(spec.id, spec.type, spec.step, "Deleted")
                continue
            if known or outcome.operation is not None:
                status.record_resource(spec.id, spec.type, spec.step, "Deleting")
            if outcome.failure is not None:
                problems.append(outcome.failure.describe(f"deleting {describe(spec)}"))
            default = settings.error_requeue if outcome.state == "failed" else settings.requeue
            delay = default if outcome.requeue_after is None else outcome.requeue_after
            waiting.append(delay)
        if waiting:
            return WavesResult("waiting", requeue=min(waiting), message="; ".join(problems))
    return WavesResult("done")
