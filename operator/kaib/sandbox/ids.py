"""ARM resource ids and request paths, parsed case-insensitively.

`/subscriptions/{s}/resourceGroups/{g}/providers/{ns}/{type}/{name}[/{type}/{name}...][/{rest}]`
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArmPath:
    """A request path under one subscription, split into its parts (names keep their casing)."""

    subscription: str
    group: str | None  # resource group name, None at subscription scope
    namespace: str | None  # e.g. Microsoft.Network
    types: tuple[str, ...]  # e.g. ("virtualNetworks", "subnets")
    names: tuple[str, ...]  # same length as types, or one shorter (a collection)
    rest: tuple[str, ...]  # what follows the last name when it is no type/name pair we store

    @property
    def full_type(self) -> str:
        return "/".join([self.namespace or "", *self.types])

    def resource_id(self, depth: int | None = None) -> str:
        depth = len(self.names) if depth is None else depth
        parts = [f"/subscriptions/{self.subscription}"]
        if self.group is not None:
            parts.append(f"/resourceGroups/{self.group}")
        if self.namespace is not None:
            parts.append(f"/providers/{self.namespace}")
        for t, n in zip(self.types[:depth], self.names[:depth], strict=True):
            parts.append(f"/{t}/{n}")
        return "".join(parts)


def parse(path: str) -> ArmPath | None:
    """Split a request path; None when it is not under /subscriptions/{s}."""
    segments = [s for s in path.split("/") if s]
    if len(segments) < 2 or segments[0].lower() != "subscriptions":
        return None
    subscription = segments[1]
    rest = segments[2:]
    group = None
    if len(rest) >= 2 and rest[0].lower() == "resourcegroups":
        group, rest = rest[1], rest[2:]
    elif rest and rest[0].lower() == "resourcegroups":
        return ArmPath(subscription, None, None, ("resourceGroups",), (), ())
    namespace = None
    if len(rest) >= 2 and rest[0].lower() == "providers":
        namespace, rest = rest[1], rest[2:]
    types: list[str] = []
    names: list[str] = []
    while rest:
        types.append(rest[0])
        if len(rest) >= 2:
            names.append(rest[1])
        rest = rest[2:]
    return ArmPath(subscription, group, namespace, tuple(types), tuple(names), ())


def group_id(subscription: str, group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def key(resource_id: str) -> str:
    """The store key of an id: ARM ids compare case-insensitively."""
    return resource_id.rstrip("/").lower()


def parent_key(resource_id: str) -> str | None:
    """The parent resource's key for a child id (.../vnets/a/subnets/b -> .../vnets/a), else None."""
    segments = resource_id.strip("/").split("/")
    try:
        provider_at = [s.lower() for s in segments].index("providers")
    except ValueError:
        return None
    after = segments[provider_at + 2 :]
    if len(after) <= 2:
        return None
    return key("/" + "/".join(segments[: len(segments) - 2]))


def name_of(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def group_of(resource_id: str) -> str | None:
    segments = resource_id.strip("/").split("/")
    lowered = [s.lower() for s in segments]
    if "resourcegroups" in lowered:
        at = lowered.index("resourcegroups")
        if at + 1 < len(segments):
            return segments[at + 1]
    return None
