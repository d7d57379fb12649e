"""The orphan sweeper's pure planning: ownership, groups, grace, dependency order."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from kaib.azure import spec as t
from kaib.azure.naming import BuildNames, Owner, build_id, staging_group_name, storage_account_name
from kaib.azure.resourcegroups import aib_tags
from kaib.azure.spec import resource_id
from kaib.controller import orphans, sweeper
from kaib.controller.orphans import Found, Sightings

SUB = "00000000-0000-0000-0000-000000000001"
NS = "team"
TEMPLATE_UID = "tpl-uid-1"
GROUP = staging_group_name(NS, "ubuntu", TEMPLATE_UID)
GRACE = 60.0


def build_obj(name: str, uid: str, status: Mapping[str, Any] | None = None, ns: str = NS) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": name, "uid": uid},
        "spec": {"templateRef": {"name": "ubuntu"}},
        "status": dict(status or {}),
    }


def template_obj(name: str = "ubuntu", uid: str = TEMPLATE_UID, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": name, "uid": uid},
        "spec": {"azure": {"subscriptionId": SUB}},
        "status": status,
    }


def res(type_: str, name: str, tags: Mapping[str, str] | None, group: str = GROUP, *parents: str) -> Found:
    return Found(resource_id(SUB, group, type_, (*parents, name)), type_, dict(tags or {}))


def build_resources(uid: str, build: str = "b1", group: str = GROUP) -> list[Found]:
    """Every tagged resource of a subnetId-only build (the largest topology)."""
    bid = build_id(uid)
    n = BuildNames(bid)
    tags = Owner(NS, "ubuntu", build, bid).tags({"team": "imaging"})
    return [
        res(t.CONTAINER_GROUP, n.builder, tags, group),
        res(t.PRIVATE_ENDPOINT, n.private_endpoint, tags, group),
        res(t.PRIVATE_LINK_SERVICE, n.private_link_service, tags, group),
        res(t.VM, n.build_vm, tags, group),
        res(t.VM, n.proxy_vm, tags, group),
        res(t.NIC, n.build_nic, tags, group),
        res(t.NIC, n.proxy_nic, tags, group),
        res(t.LOAD_BALANCER, n.load_balancer, tags, group),
        res(t.VNET, n.vnet, tags, group),
        res(t.NSG, n.nsg_aci, tags, group),
        res(t.NSG, n.nsg_pe, tags, group),
    ]


def staging(created: bool = True, group: str = GROUP, uid: str = TEMPLATE_UID) -> tuple[Found, Found]:
    owner = Owner(NS, "ubuntu")
    group_found = Found(
        resource_id(SUB, group, t.RESOURCE_GROUP, ()),
        t.RESOURCE_GROUP,
        owner.tags(aib_tags(owner, not created)),
    )
    account = res(t.STORAGE_ACCOUNT, storage_account_name(uid), owner.tags(), group)
    return group_found, account


def sweep_at(
    resources: list[Found],
    groups: list[Found],
    live: orphans.Live,
    sightings: Sightings,
    now: float,
    contents: Mapping[str, list[Found]] | None = None,
    namespaces: tuple[str, ...] = (),
) -> orphans.Sweep:
    cands = orphans.candidates(resources, groups, live, namespaces)
    if contents is None:
        everything = [*resources]
        contents = {k: [f for f in everything if f.group_key == k] for k in orphans.groups_to_inspect(cands)}
    return orphans.plan(cands, contents, live, sightings, now, GRACE)


def names(sweep: orphans.Sweep) -> list[list[str]]:
    return [[o.resource.name for o in wave] for wave in sweep.waves]


def test_a_deleted_build_is_swept_after_the_grace_period_in_dependency_order() -> None:
    group, account = staging()
    found = build_resources("uid-gone")
    live = orphans.live_objects([], [template_obj()], SUB)
    seen = Sightings()
    first = sweep_at(found, [group], live, seen, now=100.0)
    assert first.deletes == () and len(first.waiting) == len(found)  # seen now: grace starts
    assert sweep_at(found, [group], live, seen, now=100.0 + GRACE - 1).deletes == ()
    ripe = sweep_at(found, [group], live, seen, now=100.0 + GRACE)
    n = BuildNames(build_id("uid-gone"))
    assert names(ripe) == [
        [n.builder],
        [n.private_endpoint],
        [n.private_link_service],
        sorted([n.build_vm, n.proxy_vm]),
        sorted([n.build_nic, n.proxy_nic]),
        [n.load_balancer],
        [n.vnet],
        sorted([n.nsg_aci, n.nsg_pe]),
    ]
    assert {o.owner_ref for o in ripe.deletes} == {f"ImageBuild {NS}/b1 (build id {n.id})"}
    # The live template keeps its staging group and storage account.
    assert group.key not in {o.resource.key for o in ripe.deletes}
    assert account.key not in {o.resource.key for o in ripe.deletes}


def test_a_build_whose_status_is_not_written_yet_is_not_an_orphan() -> None:
    """Resources created between begin_* and the first status write: the owner exists, the uid says its id."""
    found = build_resources("uid-new")
    live = orphans.live_objects([build_obj("b1", "uid-new", status={})], [template_obj()], SUB)
    assert orphans.candidates(found, [], live, ()) == []


def test_a_recreated_build_does_not_keep_its_predecessor_alive() -> None:
    old = build_resources("uid-old")
    new = build_resources("uid-new")
    live = orphans.live_objects([build_obj("b1", "uid-new")], [template_obj()], SUB)
    cands = orphans.candidates([*old, *new], [], live, ())
    assert {o.resource.key for o in cands} == {f.key for f in old}


def test_a_resource_without_a_build_id_tag_is_kept_while_a_build_of_that_name_exists() -> None:
    tags = {**Owner(NS, "ubuntu", "b1", "").tags(), "kaib.dev/build": "b1"}
    found = [res(t.NIC, "kaib-x-nic", tags)]
    assert orphans.candidates(found, [], orphans.live_objects([build_obj("b1", "u")], [], SUB), ()) == []
    assert len(orphans.candidates(found, [], orphans.live_objects([], [], SUB), ())) == 1


def test_only_kaib_tags_in_watched_namespaces_count() -> None:
    live = orphans.live_objects([], [], SUB)
    artifact = res(t.IMAGE, "golden", {"kaib.dev/built-by": f"{NS}/b1", "kaib.dev/template": "ubuntu"})
    foreign = res(t.VNET, "users-vnet", {"kaib.dev/managed-by": "someone-else", "kaib.dev/namespace": NS})
    elsewhere = res(t.VNET, "kaib-x-vnet", Owner("other-team", "ubuntu", "b1", "0123456789").tags())
    mine = res(t.VNET, "kaib-y-vnet", Owner(NS, "ubuntu", "b1", "9876543210").tags())
    cands = orphans.candidates([artifact, foreign, elsewhere, mine], [], live, (NS, "team-*"))
    assert [o.resource.name for o in cands] == ["kaib-y-vnet"]


@pytest.mark.parametrize(
    ("namespace", "patterns", "expected"),
    [
        ("team", (), True),
        ("team", ("team",), True),
        ("team-a", ("team-*",), True),
        ("other", ("team-*",), False),
        ("team-a", ("!team-a",), False),
        ("team-b", ("!team-a",), True),
        ("team-a", ("team-*", "!team-a"), False),
    ],
)
def test_watched_follows_kopf_namespace_patterns(
    namespace: str, patterns: tuple[str, ...], expected: bool
) -> None:
    assert orphans.watched(namespace, patterns) is expected


def test_a_deleted_template_loses_its_created_group_after_its_contents() -> None:
    group, account = staging(created=True)
    found = [*build_resources("uid-gone"), account]
    live = orphans.live_objects([], [], SUB)
    seen = Sightings()
    sweep_at(found, [group], live, seen, now=0.0)
    ripe = sweep_at(found, [group], live, seen, now=GRACE)
    assert names(ripe)[-2:] == [[account.name], [GROUP]]
    assert {o.owner_ref for o in ripe.deletes if o.resource.type == t.RESOURCE_GROUP} == {
        f"ImageTemplate {NS}/ubuntu"
    }


def test_an_adopted_group_is_only_emptied() -> None:
    group, account = staging(created=False, group="users-staging")
    live = orphans.live_objects([], [], SUB)
    seen = Sightings()
    sweep_at([account], [group], live, seen, now=0.0)
    ripe = sweep_at([account], [group], live, seen, now=GRACE)
    assert names(ripe) == [[account.name]]
    assert [(o.resource.name, why) for o, why in ripe.kept] == [
        ("users-staging", "adopted staging group: only emptied, never deleted")
    ]


def test_a_group_with_something_else_in_it_stays() -> None:
    group, account = staging(created=True)
    users = res(t.VNET, "users-vnet", {"team": "x"})
    live = orphans.live_objects([], [], SUB)
    seen = Sightings()
    contents = {group.group_key: [account, users]}
    sweep_at([account], [group], live, seen, 0.0, contents)
    ripe = sweep_at([account], [group], live, seen, GRACE, contents)
    assert names(ripe) == [[account.name]]
    assert [why for _, why in ripe.kept] == ["the group still holds resources that are not orphans"]


def test_a_group_still_used_by_a_live_build_keeps_its_template_resources() -> None:
    """The template was deleted (finalizer removed) but one of its builds still runs in the group."""
    group, account = staging(created=True)
    rid = resource_id(SUB, GROUP, t.RESOURCE_GROUP, ())
    running = build_resources("uid-running")
    live = orphans.live_objects([build_obj("b1", "uid-running", {"stagingResourceGroup": rid})], [], SUB)
    seen = Sightings()
    contents = {group.group_key: [*running, account]}
    sweep_at([*running, account], [group], live, seen, 0.0, contents)
    later = sweep_at([*running, account], [group], live, seen, GRACE * 10, contents)
    assert later.deletes == () and later.waiting == ()
    assert {o.resource.name for o, _ in later.kept} == {GROUP, account.name}


def test_a_live_template_keeps_its_group_but_a_recreated_one_frees_the_old_group() -> None:
    old_group, old_account = staging(created=True)
    same = orphans.live_objects([], [template_obj()], SUB)
    assert orphans.candidates([old_account], [old_group], same, ()) == []
    recreated = orphans.live_objects([], [template_obj(uid="tpl-uid-2")], SUB)
    cands = orphans.candidates([old_account], [old_group], recreated, ())
    assert {o.resource.key for o in cands} == {old_group.key, old_account.key}


def test_a_live_template_keeps_its_recorded_and_named_groups() -> None:
    group, account = staging(created=True, group="named-staging")
    rid = resource_id(SUB, "named-staging", t.RESOURCE_GROUP, ())
    live = orphans.live_objects(
        [], [template_obj(exactStagingResourceGroup=rid, storageAccount=account.name)], SUB
    )
    assert orphans.candidates([account], [group], live, ()) == []


def test_untagged_os_disks_go_with_their_orphaned_build() -> None:
    found = build_resources("uid-gone")
    n = BuildNames(build_id("uid-gone"))
    disk = res(t.DISK, n.build_os_disk, None)
    live_disk = res(t.DISK, BuildNames(build_id("uid-live")).build_os_disk, None)
    users_disk = res(t.DISK, "data", None)
    live = orphans.live_objects([build_obj("b2", "uid-live")], [template_obj()], SUB)
    contents = {found[0].group_key: [*found, disk, live_disk, users_disk]}
    seen = Sightings()
    sweep_at(found, [], live, seen, 0.0, contents)
    ripe = sweep_at(found, [], live, seen, GRACE, contents)
    deleted = {o.resource.name for o in ripe.deletes}
    assert n.build_os_disk in deleted
    assert not {live_disk.name, users_disk.name} & deleted


def test_a_group_waits_for_contents_still_in_their_grace_period() -> None:
    group, account = staging(created=True)
    live = orphans.live_objects([], [], SUB)
    seen = Sightings()
    sweep_at([account], [group], live, seen, 0.0)
    late = build_resources("uid-gone")
    everything = [account, *late]
    ripe = sweep_at(everything, [group], live, seen, GRACE)
    assert [o.resource.name for o in ripe.deletes] == [account.name]  # the group waits for the rest
    assert group.key in {o.resource.key for o in ripe.waiting}


def test_sightings_forget_what_stops_being_an_orphan() -> None:
    seen = Sightings()
    seen.update(["a", "b"], 0.0)
    seen.update(["a"], 10.0)
    seen.update(["a", "b"], 20.0)
    assert seen.ripe("a", 20.0, 20.0) and not seen.ripe("b", 20.0, 20.0)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("30s", 30.0), ("15m", 900.0), ("2h", 7200.0)])
def test_durations(text: str, seconds: float) -> None:
    assert sweeper.parse_duration(text) == seconds


def test_resource_spec_of_a_listed_resource() -> None:
    group, account = staging()
    spec = sweeper.resource_spec(Found.of({"id": account.id, "type": "microsoft.storage/storageaccounts"}))
    assert (spec.type, spec.resource_group, spec.name) == (t.STORAGE_ACCOUNT, GROUP, account.name)
    assert spec.id == account.id
    rg = sweeper.resource_spec(Found.of({"id": group.id}))
    assert (rg.type, rg.name, rg.id) == (t.RESOURCE_GROUP, GROUP, group.id)


class FailingKube:
    core: Any = None

    async def list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        raise RuntimeError("the apiserver is down")


class NoAzure:
    settings: Any = None

    def for_subscription(self, sub: str | None = None) -> Any:
        raise AssertionError("Azure must not be touched when Kubernetes cannot be listed")


def test_a_sweep_that_cannot_list_kubernetes_deletes_nothing() -> None:
    s = sweeper.Sweeper(NoAzure(), FailingKube(), sweeper.SweeperSettings(grace=0))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="apiserver"):
        asyncio.run(s.sweep_once())


# -- the sweep's I/O order, with fakes ------------------------------------------------------------------


class Pages:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __aiter__(self) -> Any:
        async def gen() -> Any:
            for item in self.items:
                yield item

        return gen()


class FakeResource:
    def __init__(self, resources: list[Found], groups: list[Found], calls: list[str]) -> None:
        self.resources = self
        self.resource_groups = _Groups(groups, calls)
        self._found, self.calls = resources, calls

    def list(self, filter: str = "") -> Pages:
        self.calls.append("azure")
        return Pages([{"id": f.id, "type": f.type, "tags": dict(f.tags)} for f in self._found])

    def list_by_resource_group(self, group: str) -> Pages:
        return Pages(
            [{"id": f.id, "type": f.type, "tags": dict(f.tags)} for f in self._found if f.group == group]
        )


class _Groups:
    def __init__(self, groups: list[Found], calls: list[str]) -> None:
        self.groups, self.calls = groups, calls

    def list(self, filter: str = "") -> Pages:
        return Pages([{"id": g.id, "type": g.type, "tags": dict(g.tags)} for g in self.groups])


class FakeAzure:
    def __init__(self, resources: list[Found], groups: list[Found], calls: list[str]) -> None:
        self.settings = type("S", (), {"default_subscription_id": SUB})()
        self.resource = FakeResource(resources, groups, calls)

    def for_subscription(self, sub: str | None = None) -> Any:
        return self


class RacingKube:
    """A build created just after the first listing: it made its resources before Azure was listed."""

    core: Any = None

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    async def list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(f"kube:{plural}")
        if plural == "imagebuilds" and "azure" in self.calls:
            return [build_obj("b1", "uid-new")]
        return [template_obj()] if plural == "imagetemplates" else []


def test_kubernetes_is_listed_after_azure_so_a_new_build_is_never_an_orphan() -> None:
    calls: list[str] = []
    s = sweeper.Sweeper(
        FakeAzure(build_resources("uid-new"), [], calls),  # type: ignore[arg-type]
        RacingKube(calls),  # type: ignore[arg-type]
        sweeper.SweeperSettings(grace=0),
    )
    report = asyncio.run(s.sweep_once())
    assert report.removed == () and report.waiting == () and report.failed == ()
    assert calls.index("azure") < max(i for i, c in enumerate(calls) if c == "kube:imagebuilds")
