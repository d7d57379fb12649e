"""Standard conditions and the kstatus summary (pure).

A condition keeps its lastTransitionTime while its status does not change, so `kubectl wait` and
Flux see real transitions only. kstatus: Reconciling=True while working, Stalled=True on a terminal
failure (Flux stops waiting), Ready=True on success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kaib.api.status import Condition, ConditionStatus

TRUE: ConditionStatus = "True"
FALSE: ConditionStatus = "False"
UNKNOWN: ConditionStatus = "Unknown"


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """A new list with `type_` set; order kept, lastTransitionTime kept when the status is unchanged.
    Each condition is written in the API's shape (kaib.api.status.Condition): a bad status raises."""
    out = [dict(c) for c in conditions or []]
    for i, old in enumerate(out):
        if old.get("type") == type_:
            since = old.get("lastTransitionTime") if old.get("status") == status else None
            out[i] = _condition(type_, status, reason, message, generation, since or now)
            return out
    out.append(_condition(type_, status, reason, message, generation, now))
    return out


def _condition(
    type_: str, status: str, reason: str, message: str, generation: int | None, since: str
) -> dict[str, Any]:
    condition = Condition.model_validate(
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": since,
        }
    )
    return condition.model_dump(exclude_none=True)


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
