"""What exists in the sandbox: resources by id, with indexes for children, groups and references.

A resource is its ARM body (exactly what GET returns, before per-type rendering) plus `state`, the
sandbox's private facts (keys, secure values, power state) that are never returned.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ids


@dataclass
class Resource:
    id: str
    type: str  # canonical casing, e.g. Microsoft.Network/virtualNetworks/subnets
    body: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return ids.key(self.id)

    @property
    def name(self) -> str:
        return ids.name_of(self.id)

    @property
    def group(self) -> str | None:
        return ids.group_of(self.id)

    @property
    def location(self) -> str | None:
        location = self.body.get("location")
        return str(location) if location is not None else None

    @property
    def tags(self) -> dict[str, str]:
        tags = self.body.get("tags") or {}
        return dict(tags)

    @property
    def props(self) -> dict[str, Any]:
        props: dict[str, Any] = self.body.setdefault("properties", {})
        return props

    @property
    def provisioning_state(self) -> str | None:
        return self.props.get("provisioningState")


class Store:
    """Resources plus three indexes kept in step: children by parent, members by group, references."""

    def __init__(self) -> None:
        self._by_key: dict[str, Resource] = {}
        self._children: dict[str, set[str]] = {}
        self._in_group: dict[str, set[str]] = {}
        self._refs_from: dict[str, set[str]] = {}  # source -> targets
        self._refs_to: dict[str, set[str]] = {}  # target -> sources

    def get(self, resource_id: str) -> Resource | None:
        return self._by_key.get(ids.key(resource_id))

    def __contains__(self, resource_id: str) -> bool:
        return ids.key(resource_id) in self._by_key

    def __len__(self) -> int:
        return len(self._by_key)

    def all(self) -> Iterator[Resource]:
        return iter(list(self._by_key.values()))

    def put(self, resource: Resource, references: Iterable[str] = ()) -> None:
        k = resource.key
        self._by_key[k] = resource
        parent = ids.parent_key(resource.id)
        if parent is not None:
            self._children.setdefault(parent, set()).add(k)
        group = resource.group
        if group is not None and resource.type.lower() != "microsoft.resources/resourcegroups":
            self._in_group.setdefault(ids.key(ids.group_id(_sub(resource.id), group)), set()).add(k)
        self.set_references(resource.id, references)

    def set_references(self, resource_id: str, references: Iterable[str]) -> None:
        k = ids.key(resource_id)
        for target in self._refs_from.pop(k, set()):
            self._refs_to.get(target, set()).discard(k)
        targets = {ids.key(r) for r in references}
        if targets:
            self._refs_from[k] = targets
            for target in targets:
                self._refs_to.setdefault(target, set()).add(k)

    def remove(self, resource_id: str) -> Resource | None:
        k = ids.key(resource_id)
        resource = self._by_key.pop(k, None)
        if resource is None:
            return None
        parent = ids.parent_key(resource.id)
        if parent is not None:
            self._children.get(parent, set()).discard(k)
        self._children.pop(k, None)
        group = resource.group
        if group is not None:
            self._in_group.get(ids.key(ids.group_id(_sub(resource.id), group)), set()).discard(k)
        self.set_references(resource.id, ())
        return resource

    def children(self, resource_id: str, child_type: str | None = None) -> list[Resource]:
        found = [self._by_key[k] for k in sorted(self._children.get(ids.key(resource_id), ()))]
        if child_type is not None:
            found = [r for r in found if r.type.lower() == child_type.lower()]
        return found

    def descendants(self, resource_id: str) -> list[Resource]:
        """Children first-deepest, so deleting in this order never orphans anything."""
        out: list[Resource] = []
        for child in self.children(resource_id):
            out.extend(self.descendants(child.id))
            out.append(child)
        return out

    def in_group(self, subscription: str, group: str) -> list[Resource]:
        keys = self._in_group.get(ids.key(ids.group_id(subscription, group)), set())
        return [self._by_key[k] for k in sorted(keys)]

    def referrers(self, resource_id: str) -> list[Resource]:
        keys = self._refs_to.get(ids.key(resource_id), set())
        return [self._by_key[k] for k in sorted(keys) if k in self._by_key]

    def references(self, resource_id: str) -> set[str]:
        return set(self._refs_from.get(ids.key(resource_id), set()))

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    # Persistence: one JSON document; references are recomputed by the caller on load.
    def dump(self) -> list[dict[str, Any]]:
        return [
            {"id": r.id, "type": r.type, "body": r.body, "state": r.state, "created_at": r.created_at}
            for r in self._by_key.values()
        ]

    @staticmethod
    def load(items: list[dict[str, Any]]) -> list[Resource]:
        return [
            Resource(i["id"], i["type"], i["body"], i.get("state", {}), i.get("created_at", 0.0))
            for i in items
        ]


def _sub(resource_id: str) -> str:
    return resource_id.strip("/").split("/")[1]


def save_json(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document))
    tmp.replace(path)
