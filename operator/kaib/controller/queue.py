"""Which Queued build may start: one build of a template at a time, first come first served (by
creationTimestamp, then name), and at most `max_active` builds Running or Canceling in all.

Decided in memory from kopf's index of the watched builds (`index_entries` is the index function),
never from a list call: the list grew with the builds and cost O(builds) per Queued poll. kopf fills
its indexes from its first list before any handler runs, so the view is complete after a restart.
The index lags the apiserver by a watch event: a build this process has just started is still
Queued in it. `Reservations` covers that gap, under the engine's admission lock, until the index
shows the build's new phase (or the build is gone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

ACTIVE = frozenset({"Running", "Canceling"})
WAITING = frozenset({"", "Queued"})  # "": no status yet, about to be queued

Key = tuple[str, str]  # (namespace, template)
ALL_ACTIVE: Key = ("", "")  # every active build (no namespace is empty)
QueueIndex = Mapping[Key, Iterable["Entry"]]


class Entry(NamedTuple):
    """What the queue needs of one build."""

    created: str  # creationTimestamp, RFC 3339 UTC: sorts as the time does
    name: str
    uid: str
    phase: str
    cancel: bool

    @property
    def order(self) -> tuple[str, str]:
        return (self.created, self.name)


def entry_of(build: Mapping[str, Any]) -> tuple[Key, Entry]:
    meta = build.get("metadata") or {}
    spec = build.get("spec") or {}
    key = (str(meta.get("namespace") or ""), str((spec.get("templateRef") or {}).get("name") or ""))
    entry = Entry(
        created=str(meta.get("creationTimestamp") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        phase=str((build.get("status") or {}).get("phase") or ""),
        cancel=bool(spec.get("cancel")),
    )
    return key, entry


def index_entries(build: Mapping[str, Any]) -> dict[Key, Entry]:
    """The kopf index function: a build under its template, and under ALL_ACTIVE while active."""
    key, entry = entry_of(build)
    entries = {key: entry}
    if entry.phase in ACTIVE:
        entries[ALL_ACTIVE] = entry
    return entries


def index_of(builds: Iterable[Mapping[str, Any]]) -> dict[Key, list[Entry]]:
    """The same index built from a list of builds (no kopf: unit tests, tools)."""
    index: dict[Key, list[Entry]] = {}
    for build in builds:
        for key, entry in index_entries(build).items():
            index.setdefault(key, []).append(entry)
    return index


def blocker(me: Entry, template: str, same: Iterable[Entry], active: int, max_active: int) -> str | None:
    """Why `me` must wait, or None: `same` are the builds of its template, `active` counts all."""
    if active >= max_active:
        return f"waiting: {active} builds active, the operator's limit is {max_active}"
    others = [e for e in same if e.uid != me.uid]
    for other in others:
        if other.phase in ACTIVE:
            return f"waiting for build {other.name} of template {template} to finish"
    for other in others:
        if other.phase in WAITING and not other.cancel and other.order < me.order:
            return f"queued behind build {other.name} of template {template}"
    return None


@dataclass
class Reservations:
    """Builds this process started that the index may still show Queued: build uid -> its key."""

    started: dict[str, Key] = field(default_factory=dict)

    def add(self, key: Key, uid: str) -> None:
        self.started[uid] = key

    def discard(self, uid: str) -> None:
        self.started.pop(uid, None)

    def view(self, index: QueueIndex, key: Key) -> tuple[list[Entry], int]:
        """(builds of the template at `key`, active builds in all), reserved builds counted active.

        A reservation ends once the index shows the build past Queued, or no longer has it."""
        pending: dict[str, Key] = {}
        for uid, at in self.started.items():
            seen = next((e for e in index.get(at, ()) if e.uid == uid), None)
            if seen is not None and seen.phase in WAITING:
                pending[uid] = at
        self.started = pending
        same = [e._replace(phase="Running") if e.uid in pending else e for e in index.get(key, ())]
        active = sum(1 for _ in index.get(ALL_ACTIVE, ())) + len(pending)
        return same, active
