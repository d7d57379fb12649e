"""Standard conditions and the kstatus summary (pure).

A condition keeps its lastTransitionTime while its status does not change, so `kubectl wait` and
Flux see real transitions only. kstatus: Reconciling=True while working, Stalled=True on a terminal
failure (Flux stops waiting), Ready=True on success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

# The step conditions of an ImageBuild, in the order the build sets them.
STEP_CONDITIONS = (
    "StagingReady",
    "NetworkReady",
    "BuildVMReady",
    "BuilderReady",
    "Customized",
    "Validated",
    "Distributed",
    "CleanedUp",
)


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """A new list with `type_` set; order kept, lastTransitionTime kept when the status is unchanged."""
    out = [dict(c) for c in conditions or []]
    new: dict[str, Any] = {"type": type_, "status": status, "reason": reason, "message": message}
    if generation is not None:
        new["observedGeneration"] = generation
    for i, old in enumerate(out):
        if old.get("type") == type_:
            new["lastTransitionTime"] = old.get("lastTransitionTime") if old.get("status") == status else now
            new["lastTransitionTime"] = new["lastTransitionTime"] or now
            out[i] = new
            return out
    new["lastTransitionTime"] = now
    out.append(new)
    return out


def get_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    for c in conditions or []:
        if c.get("type") == type_:
            return c
    return None


def summarize(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    state: str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """Ready / Reconciling / Stalled for one of three states: working, succeeded, stalled."""
    if state == "working":
        values = {"Ready": FALSE, "Reconciling": TRUE, "Stalled": FALSE}
    elif state == "succeeded":
        values = {"Ready": TRUE, "Reconciling": FALSE, "Stalled": FALSE}
    elif state == "stalled":
        values = {"Ready": FALSE, "Reconciling": FALSE, "Stalled": TRUE}
    else:
        raise ValueError(f"unknown state {state!r}")
    out = [dict(c) for c in conditions or []]
    for type_, status in values.items():
        out = set_condition(out, type_, status, reason, message, generation, now)
    return out
