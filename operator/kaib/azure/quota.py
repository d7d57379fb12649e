"""Quota, checked in preflight: the vCPUs of a build's VMs against the subscription's compute
usages in the region (per VM family and the regional total), and its builder container group
against the container-instance usages, so a build that cannot fit fails before creating anything
instead of at the create (AIB users' complaint: quota found late).

`vm_sizes`, `needs`, `aci_needs` and `shortfalls` are pure and read the build's planned resources;
`compute_usages` and `aci_usages` are the reads (GET .../providers/{Microsoft.Compute |
Microsoft.ContainerInstance}/locations/{location}/usages). A VM size missing from VM_SIZES is left
out of the sums (said at debug level), and a usage Azure does not list is not checked: the check
only ever under-counts, so it never fails a build Azure would accept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kaib.azure import spec as t
from kaib.azure.clients import ServiceClients
from kaib.azure.spec import ResourceSpec

log = logging.getLogger(__name__)

TOTAL = "cores"  # the usage name of "Total Regional vCPUs"

# size (lower case) -> (quota family usage name, vCPUs): the sizes the sandbox models and kaib's defaults.
VM_SIZES: dict[str, tuple[str, int]] = {
    "standard_b1s": ("standardBSFamily", 1),
    "standard_b2s": ("standardBSFamily", 2),
    "standard_d2s_v3": ("standardDSv3Family", 2),
    "standard_d4s_v3": ("standardDSv3Family", 4),
    "standard_d8s_v3": ("standardDSv3Family", 8),
    "standard_d2s_v5": ("standardDSv5Family", 2),
    "standard_d4s_v5": ("standardDSv5Family", 4),
    "standard_d2_v5": ("standardDv5Family", 2),
    "standard_ds1_v2": ("standardDSv2Family", 1),
    "standard_ds2_v2": ("standardDSv2Family", 2),
    "standard_d2ds_v4": ("standardDDSv4Family", 2),  # AIB's default build VM
    "standard_d1_v2": ("standardDv2Family", 1),  # AIB's default for Gen1 sources
    "standard_a1_v2": ("standardAv2Family", 1),  # AIB's default proxy VM
}


@dataclass(frozen=True)
class Usage:
    name: str  # e.g. cores, standardBSFamily
    current: int
    limit: int


@dataclass(frozen=True)
class Need:
    name: str  # a usage name
    amount: int
    why: str  # e.g. "build VM Standard_B2s (2) + proxy VM Standard_A1_v2 (1)"
    what: str = ""  # how the message names it; "" means "<name> vCPUs"


ROLES = {"buildvm": "build VM", "network": "proxy VM"}  # the step that creates each VM


def vm_sizes(planned: Iterable[ResourceSpec]) -> list[tuple[str, str]]:
    """(role, size) of each VM a build's plan creates."""
    out = []
    for spec in planned:
        if spec.type == t.VM:
            size = ((spec.body.get("properties") or {}).get("hardwareProfile") or {}).get("vmSize")
            out.append((ROLES.get(spec.step, spec.step or "VM"), str(size or "")))
    return out


def aci_needs(planned: Iterable[ResourceSpec]) -> list[Need]:
    """Container groups and their cores (ACI counts whole cores per group)."""
    groups = [s for s in planned if s.type == t.CONTAINER_GROUP]
    if not groups:
        return []
    cores = 0
    for group in groups:
        containers = (group.body.get("properties") or {}).get("containers") or []
        cpu = sum(
            float((((c.get("properties") or {}).get("resources") or {}).get("requests") or {}).get("cpu", 1))
            for c in containers
        )
        cores += math.ceil(cpu)
    why = "the builder container group"
    return [
        Need("ContainerGroups", len(groups), why, "container instance ContainerGroups"),
        Need("StandardCores", cores, why, "container instance StandardCores"),
    ]


def needs(vms: Iterable[tuple[str, str]]) -> list[Need]:
    """vCPUs per family and in total for (role, size) pairs, e.g. ("build VM", "Standard_B2s")."""
    per_family: dict[str, tuple[int, list[str]]] = {}
    total, total_why = 0, []
    for role, size in vms:
        known = VM_SIZES.get(size.lower())
        if known is None:
            log.debug("quota check: VM size %s is not in kaib's table; its vCPUs are not counted", size)
            continue
        family, vcpus = known
        count, why = per_family.get(family, (0, []))
        per_family[family] = (count + vcpus, [*why, f"{role} {size} ({vcpus})"])
        total += vcpus
        total_why.append(f"{role} {size} ({vcpus})")
    out = [Need(family, count, " + ".join(why)) for family, (count, why) in per_family.items()]
    if total:
        out.append(Need(TOTAL, total, " + ".join(total_why), "Total Regional vCPUs (cores)"))
    return out


def shortfalls(wanted: Iterable[Need], usages: Mapping[str, Usage], location: str) -> list[str]:
    """One actionable sentence per quota the build would exceed; usages unknown to Azure are skipped."""
    problems = []
    for need in wanted:
        usage = usages.get(need.name.lower())
        if usage is None or usage.current + need.amount <= usage.limit:
            continue
        problems.append(
            f"not enough {need.what or need.name + ' vCPUs'} quota in {location}: the build needs "
            f"{need.amount} ({need.why}), the limit is {usage.limit} and {usage.current} are in use"
        )
    return problems


def advice(location: str, vms: bool, containers: bool) -> str:
    """What to do about the shortfalls of VMs and/or container groups."""
    where = []
    if vms:
        where.append(f"az vm list-usage -l {location}")
    if containers:
        where.append(f"az container list-usage -l {location}")
    fix = ["request more quota (" + "; ".join(where) + "; Azure portal > Quotas)"]
    if vms:
        fix.append("choose a vmSize of a family with room")
    if containers:
        fix.append("wait for other container groups in the region to finish")
    return " or ".join(fix)


async def compute_usages(clients: ServiceClients, location: str) -> dict[str, Usage]:
    """The subscription's compute usages in `location`, by lower-case usage name."""
    return _by_name([item async for item in clients.compute.usage.list(location)])


async def aci_usages(clients: ServiceClients, location: str) -> dict[str, Usage]:
    """The subscription's container-instance usages in `location`, by lower-case usage name."""
    return _by_name([item async for item in clients.containers.location.list_usage(location)])


def _by_name(items: Iterable[Any]) -> dict[str, Usage]:
    out: dict[str, Usage] = {}
    for item in items:
        name = str(item.name.value)
        out[name.lower()] = Usage(name, int(item.current_value or 0), int(item.limit or 0))
    return out
