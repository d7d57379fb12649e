"""The orphan sweeper against the sandbox and the real control plane, `kaib run` as a process."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from kaib import metrics
from kaib.azure.async_step import StepSettings
from kaib.azure.naming import BuildNames, Owner, build_id, staging_group_name
from kaib.azure.resourcegroups import aib_tags
from kaib.controller import orphans, sweeper
from kaib.devenv import manifests
from tests.fixtures.builds import apply, get
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import StartOperator
from tests.fixtures.sandbox import SandboxHandle

MANAGED_BY = "kaib.dev/managed-by"


def test_sandbox_lists_resource_groups_by_tag(sandbox: SandboxHandle) -> None:
    """The sweeper finds kaib's staging groups with ARM's tag filter; the sandbox must honour it."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    client: Any = sandbox.client(ResourceManagementClient)
    client.resource_groups.create_or_update(
        "orph-tagged", {"location": "westus", "tags": {MANAGED_BY: "kaib"}}
    )
    client.resource_groups.create_or_update("orph-other", {"location": "westus", "tags": {"team": "x"}})
    try:
        tagged = {g.name for g in client.resource_groups.list(filter=f"tagName eq '{MANAGED_BY}'")}
        valued = {
            g.name
            for g in client.resource_groups.list(filter=f"tagName eq '{MANAGED_BY}' and tagValue eq 'kaib'")
        }
        everything = {g.name for g in client.resource_groups.list()}
        assert "orph-tagged" in tagged and "orph-other" not in tagged
        assert "orph-tagged" in valued and "orph-other" not in valued
        assert {"orph-tagged", "orph-other"} <= everything
    finally:
        client.resource_groups.begin_delete("orph-tagged").result()
        client.resource_groups.begin_delete("orph-other").result()


# -- the sweeper in process, on orphans made by hand ------------------------------------------------

LOCATION = "westus"


def kaib_object(kind: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kaib.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def create_object(kube: Kube, doc: dict[str, Any]) -> dict[str, Any]:
    out = kube.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(doc)).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def make_build_network(sandbox: SandboxHandle, group: str, owner: Owner, managed_group: bool) -> list[str]:
    """What a no-VNet build leaves: NSGs, a VNet whose subnets use them, a NIC in a subnet (in-use order)."""
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    tags = owner.tags()
    rg_tags = Owner(owner.namespace, owner.template).tags(
        aib_tags(Owner(owner.namespace, owner.template), False)
    )
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(
        group, {"location": LOCATION, "tags": rg_tags if managed_group else {}}
    )
    net: Any = sandbox.client(NetworkManagementClient)
    n = BuildNames(owner.build_id)
    nsg = net.network_security_groups.begin_create_or_update(
        group, n.nsg_build, {"location": LOCATION, "tags": tags}
    ).result()
    vnet = net.virtual_networks.begin_create_or_update(
        group,
        n.vnet,
        {
            "location": LOCATION,
            "tags": tags,
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [
                    {
                        "name": "build",
                        "properties": {
                            "addressPrefix": "10.0.1.0/24",
                            "networkSecurityGroup": {"id": nsg.id},
                        },
                    }
                ],
            },
        },
    ).result()
    subnet = f"{vnet.id}/subnets/build"
    nic = net.network_interfaces.begin_create_or_update(
        group,
        n.build_nic,
        {
            "location": LOCATION,
            "tags": tags,
            "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet}}}]},
        },
    ).result()
    return [nic.id, vnet.id, nsg.id]


def present(sandbox: SandboxHandle, ids: list[str]) -> set[str]:
    have = {r["id"].lower() for r in sandbox.inventory()}
    return {i.lower() for i in ids} & have


def removed_count(resource_type: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value("kaib_orphans_removed_total", {"resource_type": resource_type})
        or 0.0
    )


def test_sweeper_deletes_orphans_in_order_and_never_touches_live_owners(
    kube: Kube, sandbox: SandboxHandle
) -> None:
    from kaib.azure.clients import AzureClients
    from kaib.controller.kube import Kube as EngineKube

    ns = kube.namespace(f"orph-{uuid.uuid4().hex[:6]}")
    # Live owners: a template and a build of it that has no status yet (its resources exist first).
    live_tpl = create_object(
        kube,
        kaib_object(
            "ImageTemplate",
            ns,
            "live",
            {
                "azure": {"subscriptionId": sandbox.subscription_id, "location": LOCATION},
                "source": {
                    "type": "PlatformImage",
                    "publisher": "Canonical",
                    "offer": "ubuntu-24_04-lts",
                    "sku": "server",
                    "version": "latest",
                },
                "distribute": [{"type": "VHD", "runOutputName": "vhd"}],
            },
        ),
    )
    live_build = create_object(
        kube, kaib_object("ImageBuild", ns, "live-1", {"templateRef": {"name": "live"}})
    )
    live_group = staging_group_name(ns, "live", live_tpl["metadata"]["uid"])
    live_owner = Owner(ns, "live", "live-1", build_id(live_build["metadata"]["uid"]))
    live_ids = make_build_network(sandbox, live_group, live_owner, managed_group=True)
    # An orphan in the live template's group: a build of it whose ImageBuild is gone.
    ghost_owner = Owner(ns, "live", "ghost-1", build_id(str(uuid.uuid4())))
    ghost_ids = make_build_network(sandbox, live_group, ghost_owner, managed_group=True)
    # Orphans: a build of a template that are both gone, in the template's created group.
    gone_group = staging_group_name(ns, "gone", str(uuid.uuid4()))
    gone_owner = Owner(ns, "gone", "gone-1", build_id(str(uuid.uuid4())))
    gone_ids = make_build_network(sandbox, gone_group, gone_owner, managed_group=True)
    gone_group_id = f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{gone_group}"
    # A group of someone else's, untagged, with the same shape: never looked at.
    foreign_ids = make_build_network(
        sandbox, f"users-{ns}", Owner("elsewhere", "x", "y", "0123456789"), False
    )

    async def sweep(grace: float, sightings: orphans.Sightings) -> sweeper.Report:
        azure, engine_kube = AzureClients.from_env(), EngineKube.from_kubeconfig(kube.kubeconfig)
        try:
            s = sweeper.Sweeper(
                azure,
                engine_kube,
                sweeper.SweeperSettings(grace=grace, namespaces=(ns,)),
                StepSettings(wait=0.5, requeue=0.2, error_requeue=0.2),
                sightings=sightings,
            )
            return await s.sweep_once()
        finally:
            await azure.close()
            await engine_kube.close()

    before = {
        t: removed_count(t)
        for t in (
            "Microsoft.Network/networkInterfaces",
            "Microsoft.Network/virtualNetworks",
            "Microsoft.Network/networkSecurityGroups",
            "Microsoft.Resources/resourceGroups",
        )
    }
    seen = orphans.Sightings()
    first = asyncio.run(sweep(3600.0, seen))
    assert first.removed == () and len(first.waiting) == 7, first  # 6 resources + a group, in grace
    assert present(sandbox, [*gone_ids, gone_group_id]) == {i.lower() for i in [*gone_ids, gone_group_id]}
    done = asyncio.run(sweep(0.0, seen))
    swept = [*gone_ids, *ghost_ids, gone_group_id]
    assert sorted(o.resource.id.lower() for o in done.removed) == sorted(i.lower() for i in swept)
    assert present(sandbox, swept) == set()
    live_group_id = f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{live_group}"
    assert present(sandbox, [live_group_id]) == {live_group_id.lower()}
    assert present(sandbox, live_ids) == {i.lower() for i in live_ids}, (
        "a live build's resources were touched"
    )
    assert present(sandbox, foreign_ids) == {i.lower() for i in foreign_ids}
    for type_, count in before.items():
        assert removed_count(type_) == count + (1 if "resourceGroups" in type_ else 2), type_
    # The deletes went in dependency order: NIC, then VNet, then NSG, then the group.
    deletes = [
        r["path"].split("?")[0].lower()
        for r in sandbox.requests(limit=5000)
        if r.get("method") == "DELETE" and gone_group.lower() in str(r.get("path")).lower()
    ]
    kinds = [
        next(k for k in ("networkinterfaces", "virtualnetworks", "networksecuritygroups", "") if k in p)
        for p in deletes
    ]
    assert kinds == sorted(
        kinds, key=["networkinterfaces", "virtualnetworks", "networksecuritygroups", ""].index
    ), deletes
    events = json.loads(kube.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    mine = [e for e in events if e["reason"] == "OrphansRemoved"]
    on = {(e["involvedObject"]["kind"], e["involvedObject"]["name"]): e["message"] for e in mine}
    # Owners gone with their template: on the Namespace; the ghost build's: on its live template.
    assert (
        f"ImageBuild {ns}/gone-1" in on[("Namespace", ns)]
        or f"ImageTemplate {ns}/gone" in on[("Namespace", ns)]
    )
    assert f"ImageBuild {ns}/ghost-1" in on[("ImageTemplate", "live")], on
    text = " ".join(e["message"] for e in mine)
    assert f"ImageBuild {ns}/gone-1" in text and f"ImageTemplate {ns}/gone" in text, text


# -- the operator as a process: orphans made the real way -------------------------------------------

# A short grace period and frequent sweeps, so orphans go within the test's time.
SWEEP_SOON = {"KAIB_ORPHAN_GRACE_SECONDS": "2", "KAIB_ORPHAN_INTERVAL_SECONDS": "1"}
IMAGES_GROUP = "orphan-images"


def image_template(
    name: str, sandbox: SandboxHandle, namespace: str | None = None, **spec: Any
) -> dict[str, Any]:
    images = f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{IMAGES_GROUP}"
    return manifests.image_template(name, sandbox, images, namespace=namespace, **spec)


def start_build(
    kube: Kube, sandbox: SandboxHandle, ns: str, template: dict[str, Any], name: str, **outcome: Any
) -> str:
    """Apply a template and a build; the build's container group ends as `outcome` says. Its build id."""
    apply(kube, ns, template)
    created = create_object(kube, manifests.image_build(name, template["metadata"]["name"], namespace=ns))
    bid = build_id(created["metadata"]["uid"])
    sandbox.add_outcome(f"kaib-{bid}-builder", **outcome)
    return bid


def tagged(sandbox: SandboxHandle, key: str, value: str) -> set[str]:
    return {r["id"].lower() for r in sandbox.inventory() if (r.get("tags") or {}).get(key) == value}


def in_group(sandbox: SandboxHandle, group: str) -> set[str]:
    prefix = f"/subscriptions/{sandbox.subscription_id}/resourcegroups/{group}".lower()
    return {r["id"].lower() for r in sandbox.inventory() if r["id"].lower().startswith(prefix)}


def forget(kube: Kube, ns: str, kind: str, name: str) -> None:
    """Delete an object the way a hurried human does: finalizer removed by hand, operator down."""
    kube.kubectl("patch", "-n", ns, kind, name, "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
    kube.kubectl("delete", "-n", ns, kind, name, "--ignore-not-found", "--wait=true", "--timeout=30s")


def test_orphans_of_objects_deleted_while_the_operator_was_down_are_swept(
    kube: Kube, sandbox: SandboxHandle, start_operator: StartOperator
) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(
        IMAGES_GROUP, {"location": LOCATION}
    )
    ns = kube.namespace(f"orphans-{uuid.uuid4().hex[:6]}")
    op = start_operator(namespace=ns, env=SWEEP_SOON)
    # A live build whose resources stay: its customizer fails and errorHandling is abort.
    kept_tpl = image_template("kept", sandbox, errorHandling={"onCustomizerError": "abort"})
    kept_bid = start_build(kube, sandbox, ns, kept_tpl, "kept-1", exitCode=2)
    op.wait_for(
        "kept-1 Failed",
        lambda: (get(kube, ns, "imagebuild", "kept-1").get("status") or {}).get("phase") == "Failed",
    )
    kept_staging = get(kube, ns, "imagetemplate", "kept")["status"]["exactStagingResourceGroup"]
    kept_group = kept_staging.rsplit("/", 1)[-1]
    kept = in_group(sandbox, kept_group)
    assert tagged(sandbox, "kaib.dev/build-id", kept_bid) <= kept and len(kept) > 3, kept

    # The build to orphan: kill the operator while it customizes (every build resource exists).
    gone_bid = start_build(
        kube, sandbox, ns, image_template("gone", sandbox), "gone-1", exitCode=0, seconds=600 / 0.002
    )
    gone_uid = get(kube, ns, "imagetemplate", "gone")["metadata"]["uid"]
    gone_group = staging_group_name(ns, "gone", gone_uid)
    op.wait_for(
        "gone-1's container group",
        lambda: any("containergroups" in i for i in tagged(sandbox, "kaib.dev/build-id", gone_bid)),
    )
    op.kill()
    orphaned = tagged(sandbox, "kaib.dev/build-id", gone_bid) | in_group(sandbox, gone_group)
    assert len(orphaned) >= 7, orphaned  # NSGs, VNet, NIC, VM, container group, group, storage
    forget(kube, ns, "imagebuild", "gone-1")
    forget(kube, ns, "imagetemplate", "gone")

    op.start()
    # A template deleted the normal way (operator up) whose status never recorded its staging group:
    # the state a crash leaves between the group's creation and the template status write.
    early = create_object(kube, image_template("early", sandbox, namespace=ns))
    early_group = staging_group_name(ns, "early", early["metadata"]["uid"])
    early_owner = Owner(ns, "early")
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(
        early_group, {"location": LOCATION, "tags": early_owner.tags(aib_tags(early_owner, False))}
    )
    op.wait_for(
        "early handled (finalizer and status)",
        lambda: (
            (t := get(kube, ns, "imagetemplate", "early"))["metadata"].get("finalizers")
            and (t.get("status") or {}).get("conditions")
        ),
    )
    kube.kubectl("delete", "-n", ns, "imagetemplate", "early", "--wait=true", "--timeout=30s")
    op.wait_for(
        "the orphans to be swept",
        lambda: (
            not (
                tagged(sandbox, "kaib.dev/build-id", gone_bid)
                | in_group(sandbox, gone_group)
                | in_group(sandbox, early_group)
            )
        ),
        timeout=90,
    )
    # Gone either way: the template's finalizer may leave an unrecorded group behind (a crash before
    # its status write), and then the sweeper removes it ("left behind by ImageTemplate ...").
    # Sweeps keep running (every second, 2 s grace): the live build's resources must outlast several.
    time.sleep(4)
    assert in_group(sandbox, kept_group) == kept, "a live build's resources were touched"
    assert (get(kube, ns, "imagebuild", "kept-1").get("status") or {}).get("phase") == "Failed"

    events = json.loads(kube.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    removed = [e for e in events if e["reason"] == "OrphansRemoved"]
    text = " ".join(e["message"] for e in removed)
    assert f"ImageBuild {ns}/gone-1 (build id {gone_bid})" in text and f"ImageTemplate {ns}/gone" in text, (
        text
    )
    assert all(e["involvedObject"]["kind"] == "Namespace" for e in removed)
    log = op.log()
    for rid in orphaned:
        if rid.count("/") <= 8:  # top-level resources; children (subnets, rules) go with them
            assert f"orphan sweeper: deleted {rid}," in log.lower(), f"no log line for {rid}"
    assert "kept-1" not in " ".join(line for line in log.splitlines() if "orphan sweeper: deleted" in line)

    scraped = op.metrics()
    assert scraped is not None, "kaib run serves no /metrics"
    assert "kaib_orphans_removed_total" in scraped
