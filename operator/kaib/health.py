"""kstatus for kaib's kinds: what Flux, `kubectl wait` users and cli-utils' status poller conclude
from an ImageTemplate's or ImageBuild's status (pure; mirrors sigs.k8s.io/cli-utils pkg/kstatus).

Rules, in cli-utils' order:
1. ``metadata.deletionTimestamp`` set -> Terminating.
2. ``status.observedGeneration`` present and != ``metadata.generation`` -> InProgress.
3. The first condition that is Reconciling=True -> InProgress, or Stalled=True -> Failed.
4. A Ready condition: True -> Current, anything else -> InProgress (never Failed).
5. Otherwise Current: kstatus calls an object without a status Current, so the operator must write
   Reconciling=True (or an observedGeneration) as its first status.

``compute(obj)`` takes the object as the API server returns it (a dict). A test of the engine applies
it to every status it observes: ``[compute(o).status for o in observed]`` must read InProgress...
then Current (success) or Failed (terminal failure), and Terminating once deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"
    CURRENT = "Current"
    TERMINATING = "Terminating"


@dataclass(frozen=True)
class Result:
    status: Status
    message: str
    reason: str = ""


def compute(obj: Mapping[str, Any]) -> Result:
    """The kstatus of one object."""
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if metadata.get("deletionTimestamp"):
        return Result(Status.TERMINATING, "Resource scheduled for deletion")

    generation = metadata.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        kind = obj.get("kind", "Resource")
        return Result(
            Status.IN_PROGRESS,
            f"{kind} generation is {generation}, but latest observed generation is {observed}",
            "LatestGenerationNotObserved",
        )

    conditions = status.get("conditions") or []
    for condition in conditions:
        if condition.get("type") == "Reconciling" and condition.get("status") == "True":
            return Result(Status.IN_PROGRESS, condition.get("message", ""), condition.get("reason", ""))
        if condition.get("type") == "Stalled" and condition.get("status") == "True":
            return Result(Status.FAILED, condition.get("message", ""), condition.get("reason", ""))

    for condition in conditions:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return Result(Status.CURRENT, condition.get("message", ""), condition.get("reason", ""))
            return Result(Status.IN_PROGRESS, condition.get("message", ""), condition.get("reason", ""))

    return Result(Status.CURRENT, "Resource is current")


def statuses(observed: Sequence[Mapping[str, Any]]) -> list[Status]:
    """kstatus of each observed object, with consecutive repeats collapsed: the transitions a
    watcher sees (e.g. [InProgress, Current])."""
    out: list[Status] = []
    for obj in observed:
        status = compute(obj).status
        if not out or out[-1] != status:
            out.append(status)
    return out
