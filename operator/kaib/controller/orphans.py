"""Orphan planning, pure: which kaib-tagged Azure resources have lost their owner, and how they go.

An orphan is left when an ImageBuild or ImageTemplate disappears without its cleanup: deleted while
the operator was down and its finalizer removed by hand. The sweeper (`sweeper.py`) lists what
carries kaib's ownership tag in Azure, then the live objects in Kubernetes, and asks `plan` what to
delete. The rules, each conservative:

- Only resources with `kaib.dev/managed-by: kaib` are considered, and only in watched namespaces
  (another operator may own other namespaces of the same subscription).
- A build's resource (it has a `kaib.dev/build` tag) is an orphan when no ImageBuild of that
  namespace/name exists, or one exists with another build id (a recreated object). The build id
  comes from the live object's uid, not its status, so a build whose resources exist before its
  status records them (a crash between begin_* and the status write) is never an orphan.
- A template's resource (staging group, storage account) is an orphan when no ImageTemplate of that
  namespace/name exists, or the live one is a recreated object that claims another group/account
  (names derive from the template uid). It is kept while its group is still in use: recorded by a
  live build, claimed by a live template, or holding anything that is not being swept.
- A staging group is deleted only if kaib created it (`createdBy` tag) and nothing but orphans is in
  it; an adopted group (`usedBy`) is only emptied of kaib's resources, as template deletion does.
- Untagged companions (a VM's OS disk) are swept by their deterministic name when their build id
  belongs to no live build.
- Grace: an orphan is deleted only after it has been seen orphaned for `grace` seconds. The first
  sighting is kept in memory (`Sightings`): a restarted operator starts counting again, which only
  ever delays a delete. Listing Azure before Kubernetes closes the other race: a resource listed in
  Azure was created by an owner that already existed, so the later Kubernetes list shows that owner
  unless it is really gone.

An exported disk (a VHD distribution's grant of read access still in force, e.g. the operator died
during the copy) cannot be deleted, nor can the VM whose OS disk it is: Azure answers 409 Conflict.
The sweeper revokes the access (endGetAccess, after a GET shows diskState ActiveSAS) before
deleting either: `disks_to_revoke` says which disks.

Deletion goes in ARM's dependency order (the container group holds the ACI subnet; private endpoint
-> private link service -> VMs -> NICs and disks -> load balancer -> VNet -> NSGs -> storage account
-> the group), as the engine's cleanup does.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kaib.azure import spec as t
from kaib.azure.naming import (
    MANAGED_BY,
    TAG_BUILD,
    TAG_BUILD_ID,
    TAG_MANAGED_BY,
    TAG_NAMESPACE,
    TAG_TEMPLATE,
    build_id,
    staging_group_name,
    storage_account_name,
)
from kaib.azure.resourcegroups import CREATED_BY
from kaib.azure.spec import parse_resource_id

# Lower rank first; one wave per rank.
DELETE_RANK: dict[str, int] = {
    t.CONTAINER_GROUP: 0,
    t.PRIVATE_ENDPOINT: 1,
    t.PRIVATE_LINK_SERVICE: 2,
    t.VM: 3,
    t.NIC: 4,
    t.DISK: 4,
    t.IMAGE: 4,
    t.LOAD_BALANCER: 5,
    t.VNET: 6,
    t.NSG: 7,
    t.STORAGE_ACCOUNT: 8,
    t.RESOURCE_GROUP: 9,
}
_CANONICAL = {name.lower(): name for name in DELETE_RANK}
# Untagged resources a build leaves by name: the OS disks Azure creates for its VMs.
_COMPANION = re.compile(r"^kaib-([0-9a-f]{10})-(osdisk|proxy-osdisk)$")


def canonical_type(type_: str) -> str:
    """ARM types are case-insensitive; the planner and the metric use one spelling."""
    return _CANONICAL.get(type_.lower(), type_)


@dataclass(frozen=True)
class Found:
    """One Azure resource (or resource group) as a list call returned it."""

    id: str
    type: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> Found:
        rid = str(item.get("id") or "")
        type_ = str(item.get("type") or "")
        if not type_ and "/providers/" not in rid.lower():
            type_ = t.RESOURCE_GROUP
        return cls(rid, canonical_type(type_), dict(item.get("tags") or {}))

    @property
    def key(self) -> str:
        return self.id.lower()

    @property
    def subscription(self) -> str:
        return parse_resource_id(self.id).get("subscription", "")

    @property
    def group(self) -> str:
        return parse_resource_id(self.id).get("resourceGroup", "")

    @property
    def group_key(self) -> str:
        return f"{self.subscription}/{self.group}".lower()

    @property
    def name(self) -> str:
        if self.type == t.RESOURCE_GROUP:
            return self.group
        return parse_resource_id(self.id).get("name", "")

    @property
    def managed(self) -> bool:
        return self.tags.get(TAG_MANAGED_BY) == MANAGED_BY


def group_key(subscription: str, group: str) -> str:
    return f"{subscription}/{group}".lower()


@dataclass(frozen=True)
class Live:
    """What exists in Kubernetes, reduced to what ownership needs."""

    builds: Mapping[tuple[str, str], str]  # (namespace, name) -> build id (from the uid)
    build_ids: frozenset[str]
    templates: Mapping[tuple[str, str], TemplateClaim]
    groups_in_use: frozenset[str]  # group keys recorded or claimed by live objects


@dataclass(frozen=True)
class TemplateClaim:
    groups: frozenset[str]  # lower-case group names this template uses
    accounts: frozenset[str]


def live_objects(
    builds: Iterable[Mapping[str, Any]], templates: Iterable[Mapping[str, Any]], default_subscription: str
) -> Live:
    """Reduce live ImageBuilds and ImageTemplates to what the ownership rules need."""
    by_build: dict[tuple[str, str], str] = {}
    in_use: set[str] = set()
    for b in builds:
        meta = b.get("metadata") or {}
        by_build[(str(meta.get("namespace")), str(meta.get("name")))] = build_id(str(meta.get("uid")))
        recorded = str((b.get("status") or {}).get("stagingResourceGroup") or "")
        if recorded:
            parts = parse_resource_id(recorded)
            in_use.add(group_key(parts.get("subscription", ""), parts.get("resourceGroup", "")))
    claims: dict[tuple[str, str], TemplateClaim] = {}
    for tpl in templates:
        meta = tpl.get("metadata") or {}
        ns, name, uid = str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid"))
        spec, status = tpl.get("spec") or {}, tpl.get("status") or {}
        sub = str((spec.get("azure") or {}).get("subscriptionId") or default_subscription)
        groups = {staging_group_name(ns, name, uid)}
        for rid in (spec.get("stagingResourceGroup"), status.get("exactStagingResourceGroup")):
            if rid:
                parts = parse_resource_id(str(rid))
                groups.add(parts.get("resourceGroup", ""))
                in_use.add(group_key(parts.get("subscription", sub), parts.get("resourceGroup", "")))
        in_use.update(group_key(sub, g) for g in groups)
        accounts = {storage_account_name(uid), str(status.get("storageAccount") or "")} - {""}
        claims[(ns, name)] = TemplateClaim(frozenset(g.lower() for g in groups), frozenset(accounts))
    return Live(by_build, frozenset(by_build.values()), claims, frozenset(in_use))


def watched(namespace: str, patterns: Sequence[str]) -> bool:
    """kopf's namespace patterns: globs, `!glob` excludes; no patterns means every namespace."""
    if not patterns:
        return True
    included = any(fnmatch.fnmatchcase(namespace, p) for p in patterns if not p.startswith("!"))
    excluded = any(fnmatch.fnmatchcase(namespace, p[1:]) for p in patterns if p.startswith("!"))
    only_exclusions = all(p.startswith("!") for p in patterns)
    return (included or only_exclusions) and not excluded


OwnerKind = Literal["build", "template"]


@dataclass(frozen=True)
class Orphan:
    resource: Found
    owner_kind: OwnerKind
    namespace: str
    owner: str  # the ImageBuild or ImageTemplate name
    template: str
    build_id: str = ""

    @property
    def owner_ref(self) -> str:
        what = "ImageBuild" if self.owner_kind == "build" else "ImageTemplate"
        suffix = f" (build id {self.build_id})" if self.build_id else ""
        return f"{what} {self.namespace}/{self.owner}{suffix}"


def owner_state(found: Found, live: Live) -> Orphan | None:
    """The orphan this tagged resource is, or None when its owner is alive (by tags only)."""
    tags = found.tags
    ns, template = tags.get(TAG_NAMESPACE, ""), tags.get(TAG_TEMPLATE, "")
    if not found.managed or not ns or not template:
        return None  # not kaib's, or tags too incomplete to prove anything
    build = tags.get(TAG_BUILD, "")
    if build:
        tagged_id = tags.get(TAG_BUILD_ID, "")
        live_id = live.builds.get((ns, build))
        if live_id is not None and (not tagged_id or tagged_id == live_id):
            return None
        return Orphan(found, "build", ns, build, template, tagged_id)
    claim = live.templates.get((ns, template))
    if claim is not None:
        if found.type == t.RESOURCE_GROUP and found.group.lower() in claim.groups:
            return None
        if found.type == t.STORAGE_ACCOUNT and found.name in claim.accounts:
            return None
        if found.type not in (t.RESOURCE_GROUP, t.STORAGE_ACCOUNT):
            return None  # a template owns nothing else; leave what we do not understand
    return Orphan(found, "template", ns, template, template)


def candidates(
    resources: Iterable[Found], groups: Iterable[Found], live: Live, namespaces: Sequence[str]
) -> list[Orphan]:
    """Tagged resources and groups whose owner is gone, before the group-in-use and grace rules."""
    out = []
    for found in [*groups, *resources]:
        orphan = owner_state(found, live)
        if orphan is not None and watched(orphan.namespace, namespaces):
            out.append(orphan)
    return out


def groups_to_inspect(orphans: Iterable[Orphan]) -> set[str]:
    """Groups whose full contents the planner needs (untagged companions, emptiness)."""
    return {o.resource.group_key for o in orphans}


@dataclass(frozen=True)
class Sweep:
    """What to delete now, wave by wave, and what waits."""

    waves: tuple[tuple[Orphan, ...], ...]
    waiting: tuple[Orphan, ...]  # orphans still inside their grace period
    kept: tuple[tuple[Orphan, str], ...]  # orphans not deleted, and why

    @property
    def deletes(self) -> tuple[Orphan, ...]:
        return tuple(o for wave in self.waves for o in wave)


@dataclass
class Sightings:
    """When each orphan was first seen (monotonic seconds), kept in memory."""

    first: dict[str, float] = field(default_factory=dict)

    def update(self, keys: Iterable[str], now: float) -> None:
        current = set(keys)
        for key in list(self.first):
            if key not in current:
                del self.first[key]  # gone, or no longer an orphan: forget it
        for key in current:
            self.first.setdefault(key, now)

    def ripe(self, key: str, now: float, grace: float) -> bool:
        return now - self.first.get(key, now) >= grace


def plan(
    orphans: Sequence[Orphan],
    contents: Mapping[str, Sequence[Found]],
    live: Live,
    sightings: Sightings,
    now: float,
    grace: float,
) -> Sweep:
    """Apply the group rules and the grace period to the candidates; order the deletes.

    `contents` holds every resource (tagged or not) of each group of `groups_to_inspect`.
    """
    kept: list[tuple[Orphan, str]] = []
    orphan_keys = {o.resource.key for o in orphans}
    build_orphans = [o for o in orphans if o.owner_kind == "build"]
    companions = []
    for gkey, items in contents.items():
        for found in items:
            m = _COMPANION.match(found.name)
            if found.managed or found.key in orphan_keys or m is None or m.group(1) in live.build_ids:
                continue
            owner = next(
                (o for o in build_orphans if o.build_id == m.group(1) and o.resource.group_key == gkey), None
            )
            if owner is not None:
                companions.append(
                    Orphan(found, "build", owner.namespace, owner.owner, owner.template, owner.build_id)
                )
    everything = [*orphans, *companions]
    swept = {o.resource.key for o in everything}
    # A group holding anything that stays (a live build's resource, the user's) is in use.
    busy = set(live.groups_in_use)
    for gkey, items in contents.items():
        if any(f.key not in swept for f in items):
            busy.add(gkey)
    chosen: list[Orphan] = []
    for o in everything:
        r = o.resource
        if o.owner_kind == "template" and r.group_key in live.groups_in_use:
            kept.append((o, "its staging group is still used by a live ImageBuild or ImageTemplate"))
        elif r.type == t.RESOURCE_GROUP and r.tags.get(CREATED_BY) != "kaib":
            kept.append((o, "adopted staging group: only emptied, never deleted"))
        elif r.type == t.RESOURCE_GROUP and r.group_key in busy:
            kept.append((o, "the group still holds resources that are not orphans"))
        elif r.type not in DELETE_RANK:
            kept.append((o, f"kaib does not delete resources of type {r.type}"))
        else:
            chosen.append(o)
    sightings.update((o.resource.key for o in chosen), now)
    ripe = [o for o in chosen if sightings.ripe(o.resource.key, now, grace)]
    waiting = [o for o in chosen if not sightings.ripe(o.resource.key, now, grace)]
    # A group goes only when everything in it goes in this same sweep.
    ripe_keys = {o.resource.key for o in ripe}
    final = []
    for o in ripe:
        r = o.resource
        if r.type == t.RESOURCE_GROUP and any(f.key not in ripe_keys for f in contents.get(r.group_key, ())):
            waiting.append(o)
        else:
            final.append(o)
    ranks = sorted({DELETE_RANK[o.resource.type] for o in final})
    waves = tuple(
        tuple(
            sorted((o for o in final if DELETE_RANK[o.resource.type] == rank), key=lambda o: o.resource.key)
        )
        for rank in ranks
    )
    return Sweep(waves, tuple(waiting), tuple(kept))


def disks_to_revoke(orphan: Orphan, deletes: Iterable[Orphan]) -> tuple[Orphan, ...]:
    """The disks whose export must be revoked before `orphan` can go: itself when it is a disk; for a
    VM, its build's disks in its group (its OS disk is one; a revoke of a disk not exported is skipped)."""
    if orphan.resource.type == t.DISK:
        return (orphan,)
    if orphan.resource.type != t.VM or not orphan.build_id:
        return ()
    return tuple(
        o
        for o in deletes
        if o.resource.type == t.DISK
        and o.build_id == orphan.build_id
        and o.resource.group_key == orphan.resource.group_key
    )
