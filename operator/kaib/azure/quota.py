"""Compute quota, checked in preflight: the vCPUs a build's VMs need against the subscription's
usages in the region (per VM family and the regional total), so a build that cannot fit fails
before creating anything instead of at the VM create (AIB users' complaint: quota found late).

`needs` and `shortfalls` are pure; `compute_usages` is the one read (GET .../providers/
Microsoft.Compute/locations/{location}/usages). A VM size missing from VM_SIZES is left out of
the sums (said at debug level): the check then only ever under-counts, so it never fails a build
Azure would accept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kaib.azure.clients import ServiceClients

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
    vcpus: int
    why: str  # e.g. "build VM Standard_B2s (2) + proxy VM Standard_A1_v2 (1)"


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
        out.append(Need(TOTAL, total, " + ".join(total_why)))
    return out


def shortfalls(wanted: Iterable[Need], usages: Mapping[str, Usage], location: str) -> list[str]:
    """One actionable sentence per quota the build would exceed; usages unknown to Azure are skipped."""
    problems = []
    for need in wanted:
        usage = usages.get(need.name.lower())
        if usage is None or usage.current + need.vcpus <= usage.limit:
            continue
        what = "Total Regional vCPUs (cores)" if need.name == TOTAL else f"{need.name} vCPUs"
        problems.append(
            f"not enough {what} quota in {location}: the build needs {need.vcpus} ({need.why}), "
            f"the limit is {usage.limit} and {usage.current} are in use"
        )
    return problems


def advice(location: str) -> str:
    return (
        f"request more quota (az vm list-usage -l {location}; Azure portal > Quotas) "
        "or choose a vmSize of another family"
    )


async def compute_usages(clients: ServiceClients, location: str) -> dict[str, Usage]:
    """The subscription's compute usages in `location`, by lower-case usage name."""
    out: dict[str, Usage] = {}
    async for item in clients.compute.usage.list(location):
        raw: Any = item
        name = str(raw.name.value)
        out[name.lower()] = Usage(name, int(raw.current_value), int(raw.limit))
    return out
