"""The gauges of builds in flight (kaib_active_builds, kaib_azure_lro_in_flight), from kopf's index.

kopf keeps an in-memory index of every ImageBuild it watches, updated on each watch event and
emptied of an object when the object is gone; so the gauges are right after a restart (kopf lists
every build first), when builds are deleted, and whoever changed the status. Each build adds a
few keys (its phase when not final, one per saved operation's resource type); a recount walks the
keys, not the builds, and no label ever names a build.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from kaib import metrics
from kaib.controller.buildstatus import TERMINAL

log = logging.getLogger(__name__)

PHASE, LRO = "phase", "lro"
Key = tuple[str, str]


def index_entries(status: Mapping[str, Any] | None) -> dict[Key, int]:
    """What one build contributes: (phase, P) -> 1 while not final; (lro, TYPE) -> operations."""
    status = status or {}
    entries: dict[Key, int] = {}
    phase = str(status.get("phase") or "Queued")  # no status yet: it is about to be queued
    if phase not in TERMINAL:
        entries[(PHASE, phase)] = 1
    # Saved operations count whatever the phase: a deleted build's cleanup saves some after it ended.
    for op in status.get("operations") or []:
        key = (LRO, metrics.resource_type_of(str(op.get("resourceId") or "")))
        entries[key] = entries.get(key, 0) + 1
    return entries


def counts(index: Mapping[Key, Iterable[int]]) -> tuple[dict[str, int], dict[str, int]]:
    """(builds per phase, operations per resource type) from the index's stores."""
    phases: dict[str, int] = {}
    lros: dict[str, int] = {}
    for (kind, name), values in list(index.items()):
        target = phases if kind == PHASE else lros
        target[name] = target.get(name, 0) + sum(values)
    return phases, lros


def publish(index: Mapping[Key, Iterable[int]]) -> None:
    phases, lros = counts(index)
    metrics.set_active(phases)
    metrics.set_lro_in_flight(lros)


async def keep_published(index: Mapping[Key, Iterable[int]], interval: float = 1.0) -> None:
    """Recount every `interval` seconds, for as long as the operator runs."""
    while True:
        try:
            publish(index)
        except Exception:  # a gauge must never stop the operator
            log.exception("cannot update the build gauges")
        await asyncio.sleep(interval)
