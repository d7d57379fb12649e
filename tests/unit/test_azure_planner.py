"""Resource specs and the planner: names, tags, parameters, each topology's resource set, delete order."""

from __future__ import annotations

from typing import Any

import pytest

from kaib.azure import compute, containerinstance, network, resourcegroups, storage
from kaib.azure import spec as t
from kaib.azure.compute import Access
from kaib.azure.containerinstance import EnvVar
from kaib.azure.context import BuildContext
from kaib.azure.naming import BuildNames, Owner, build_id, owned_by, staging_group_name, storage_account_name
from kaib.azure.planner import PlanFacts, Topology, deletion_order, os_type, plan, topology
from kaib.azure.spec import ResourceSpec, parse_resource_id

SUB = "00000000-0000-0000-0000-000000000001"
USER_RG = f"/subscriptions/{SUB}/resourceGroups/net"
USER_SUBNET = f"{USER_RG}/providers/Microsoft.Network/virtualNetworks/corp/subnets/build"
USER_ACI = f"{USER_RG}/providers/Microsoft.Network/virtualNetworks/corp/subnets/aci"
IDENTITY = f"{USER_RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aib"
VM_IDENTITY = f"{USER_RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/vm"


def template_spec(vnet: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {
            "type": "PlatformImage",
            "publisher": "Canonical",
            "offer": "o",
            "sku": "s",
            "version": "latest",
        },
        "customize": [{"type": "Shell", "inline": ["echo hi"]}],
        "distribute": [
            {
                "type": "ManagedImage",
                "runOutputName": "img",
                "imageId": f"{USER_RG}/providers/Microsoft.Compute/images/golden",
                "location": "westus",
            }
        ],
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}},
        "vmProfile": {"vmSize": "Standard_D4ds_v5", "userAssignedIdentities": [VM_IDENTITY]},
        "managedResourceTags": {"costcenter": "42"},
        "azure": {"subscriptionId": SUB, "location": "westus"},
    }
    if vnet:
        spec["vmProfile"]["vnetConfig"] = vnet
    return spec


def context(uid: str = "uid-1") -> BuildContext:
    bid = build_id(uid)
    return BuildContext(
        subscription_id=SUB,
        location="westus",
        staging_group="IT_ns_tmpl_abcd",
        names=BuildNames(bid),
        owner=Owner("ns", "tmpl", "build-1", bid),
        managed_tags={"costcenter": "42"},
    )


def facts(uid: str = "uid-1") -> PlanFacts:
    return PlanFacts(
        ctx=context(uid),
        access=Access("Linux", ssh_public_key="ssh-ed25519 AAAA"),
        image=compute.image_reference(template_spec()["source"], "1.2.3"),
        builder_image="kaib-builder:dev",
        builder_env=(EnvVar("KAIB_BUILD_ID", "x"), EnvVar("KAIB_SSH_PRIVATE_KEY", "secret", secure=True)),
    )


TOPOLOGIES: dict[Topology, dict[str, str] | None] = {
    "NoVNet": None,
    "SubnetOnly": {"subnetId": USER_SUBNET},
    "SubnetAndACI": {"subnetId": USER_SUBNET, "containerInstanceSubnetId": USER_ACI},
}

# aib-inventory.md section 3, by (type, kaib name suffix).
EXPECTED: dict[Topology, set[tuple[str, str]]] = {
    "NoVNet": {
        (t.NSG, "nsg-aci"),
        (t.NSG, "nsg-build"),
        (t.VNET, "vnet"),
        (t.NIC, "nic"),
        (t.VM, "vm"),
        (t.CONTAINER_GROUP, "builder"),
    },
    "SubnetOnly": {
        (t.NSG, "nsg-aci"),
        (t.NSG, "nsg-pe"),
        (t.VNET, "vnet"),
        (t.LOAD_BALANCER, "lb"),
        (t.NIC, "proxy-nic"),
        (t.VM, "proxy"),
        (t.PRIVATE_LINK_SERVICE, "pls"),
        (t.PRIVATE_ENDPOINT, "pe"),
        (t.NIC, "nic"),
        (t.VM, "vm"),
        (t.CONTAINER_GROUP, "builder"),
    },
    "SubnetAndACI": {(t.NIC, "nic"), (t.VM, "vm"), (t.CONTAINER_GROUP, "builder")},
}


def suffix(spec: ResourceSpec, bid: str) -> str:
    prefix = f"kaib-{bid}-"
    assert spec.name.startswith(prefix), spec.name
    return spec.name[len(prefix) :]


@pytest.mark.parametrize("kind", list(TOPOLOGIES))
def test_each_topology_creates_exactly_the_aib_resource_set(kind: Topology) -> None:
    spec = template_spec(TOPOLOGIES[kind])
    assert topology(spec) == kind
    p = plan(spec, facts())
    bid = build_id("uid-1")
    created = {(s.type, suffix(s, bid)) for s in p.created}
    assert created == EXPECTED[kind]
    assert len(p.created) == len(created), "a resource planned twice"
    assert all(s.resource_group == "IT_ns_tmpl_abcd" for s in p.created)
    assert not any("publicIP" in str(s.body) for s in p.created), "isolated builds use no public IP"


@pytest.mark.parametrize("kind", list(TOPOLOGIES))
def test_cleanup_deletes_everything_created_and_keeps_the_staging_group(kind: Topology) -> None:
    p = plan(template_spec(TOPOLOGIES[kind]), facts())
    deleted = deletion_order(p.delete_waves)
    assert len(deleted) == len(set(deleted))
    assert {s.id for s in p.created} <= set(deleted)
    assert {parse_resource_id(i)["type"] for i in deleted} - {s.type for s in p.created} == {t.DISK}
    assert not any(parse_resource_id(i).get("type") in (t.RESOURCE_GROUP, t.STORAGE_ACCOUNT) for i in deleted)


def test_subnet_only_delete_order_follows_arm_dependencies() -> None:
    p = plan(template_spec(TOPOLOGIES["SubnetOnly"]), facts())
    wave_of = {s.name.split("-", 2)[2]: i for i, wave in enumerate(p.delete_waves) for s in wave}
    assert wave_of["builder"] == 0
    assert wave_of["builder"] < wave_of["pe"] < wave_of["pls"] < wave_of["lb"]
    assert wave_of["vm"] < wave_of["nic"] and wave_of["proxy"] < wave_of["proxy-nic"] < wave_of["lb"]
    assert wave_of["vm"] < wave_of["osdisk"]
    assert wave_of["pe"] < wave_of["vnet"] < wave_of["nsg-aci"] == wave_of["nsg-pe"]


def test_create_waves_respect_references() -> None:
    """Every id a spec references in the staging group was created in an earlier wave (or step)."""
    for kind, vnet in TOPOLOGIES.items():
        p = plan(template_spec(vnet), facts())
        seen: set[str] = set()
        for step in p.steps:
            for wave in step.waves:
                for s in wave:
                    body = str(s.body)
                    for other in p.created:
                        if other is not s and f"'{other.id}" in body:
                            assert other.id in seen, f"{kind}: {s.name} refers to {other.name} too early"
                seen |= {s.id for s in wave}


def test_names_are_deterministic_and_build_specific() -> None:
    first = {s.id for s in plan(template_spec(), facts("uid-1")).created}
    again = {s.id for s in plan(template_spec(), facts("uid-1")).created}
    other = {s.id for s in plan(template_spec(), facts("uid-2")).created}
    assert first == again
    assert not first & other
    assert build_id("uid-1") == build_id("uid-1") and len(build_id("uid-1")) == 10
    name = staging_group_name("ns", "tmpl", "tuid")
    assert name.startswith("IT_ns_tmpl_") and name == staging_group_name("ns", "tmpl", "tuid")
    assert len(staging_group_name("n" * 63, "t" * 253, "u")) <= 90
    account = storage_account_name("tuid")
    assert 3 <= len(account) <= 24 and account.isalnum() and account.islower()


def test_every_resource_carries_ownership_and_managed_tags() -> None:
    ctx = context()
    for s in plan(template_spec(TOPOLOGIES["SubnetOnly"]), facts()).created:
        tags = s.body["tags"]
        assert tags["kaib.dev/managed-by"] == "kaib"
        assert tags["kaib.dev/build"] == "build-1"
        assert tags["kaib.dev/template"] == "tmpl"
        assert tags["kaib.dev/namespace"] == "ns"
        assert tags["costcenter"] == "42"
        assert owned_by(tags, ctx.owner)
    assert not owned_by({"kaib.dev/managed-by": "kaib"}, ctx.owner)


def test_managed_tags_cannot_override_ownership() -> None:
    owner = Owner("ns", "tmpl", "b", "id")
    assert owner.tags({"kaib.dev/managed-by": "someone", "x": "y"})["kaib.dev/managed-by"] == "kaib"


def test_no_vnet_nsgs_allow_only_aci_to_build_on_ssh_and_winrm() -> None:
    p = plan(template_spec(), facts())
    nsg_build = next(s for s in p.created if s.name.endswith("nsg-build"))
    rules = {r["name"]: r["properties"] for r in nsg_build.body["properties"]["securityRules"]}
    allow = rules["allow-builder"]
    assert allow["sourceAddressPrefix"] == network.ACI_PREFIX
    assert allow["destinationAddressPrefix"] == network.BUILD_PREFIX
    assert allow["destinationPortRanges"] == ["22", "5986"]
    assert rules["deny-vnet"]["access"] == "Deny"
    vnet = next(s for s in p.created if s.type == t.VNET)
    subnets = {s["name"]: s["properties"] for s in vnet.body["properties"]["subnets"]}
    assert subnets["aci"]["delegations"][0]["properties"]["serviceName"] == network.ACI_DELEGATION
    assert subnets["build"]["networkSecurityGroup"]["id"].endswith("nsg-build")


def test_build_vm_parameters() -> None:
    p = plan(template_spec(), facts())
    vm = next(s for s in p.created if s.type == t.VM)
    props = vm.body["properties"]
    assert props["hardwareProfile"]["vmSize"] == "Standard_D4ds_v5"
    assert props["storageProfile"]["imageReference"] == {
        "publisher": "Canonical",
        "offer": "o",
        "sku": "s",
        "version": "1.2.3",
    }
    assert props["storageProfile"]["osDisk"]["name"].endswith("-osdisk")
    assert props["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"] == "ssh-ed25519 AAAA"
    assert props["networkProfile"]["networkInterfaces"][0]["id"].endswith("-nic")
    assert vm.body["identity"]["userAssignedIdentities"] == {VM_IDENTITY: {}}


def test_builder_group_parameters() -> None:
    for kind, vnet in TOPOLOGIES.items():
        p = plan(template_spec(vnet), facts())
        group = p.step("builder").specs[0]
        props = group.body["properties"]
        assert props["restartPolicy"] == "Never"
        subnet = props["subnetIds"][0]["id"]
        assert subnet == (USER_ACI if kind == "SubnetAndACI" else network.subnet_id(context(), "aci"))
        env = {e["name"]: e for e in props["containers"][0]["properties"]["environmentVariables"]}
        assert env["KAIB_SSH_PRIVATE_KEY"] == {"name": "KAIB_SSH_PRIVATE_KEY", "secureValue": "secret"}
        assert env["KAIB_BUILD_ID"] == {"name": "KAIB_BUILD_ID", "value": "x"}
        assert group.body["identity"]["userAssignedIdentities"] == {IDENTITY: {}}
        assert p.communicator_port == (60001 if kind == "SubnetOnly" else 22)


def test_builder_is_never_put_again_once_it_exists() -> None:
    group = plan(template_spec(), facts()).step("builder").specs[0]
    assert group.parameters(None) is not None
    assert group.parameters({"properties": {"provisioningState": "Failed"}}) is None
    vnet = plan(template_spec(), facts()).step("network").specs[-1]
    assert vnet.parameters({"properties": {"provisioningState": "Failed"}}) is not None
    assert vnet.parameters({"properties": {"provisioningState": "Succeeded"}}) is None


def test_windows_uses_winrm_and_the_windows_proxy_port() -> None:
    spec = template_spec(TOPOLOGIES["SubnetOnly"])
    spec["customize"] = [{"type": "PowerShell", "inline": ["Write-Host hi"]}]
    assert os_type(spec) == "Windows"
    f = facts()
    win = PlanFacts(f.ctx, Access("Windows", admin_password="P@ss"), f.image)
    p = plan(spec, win)
    assert p.communicator_port == 60000
    vm = next(s for s in p.created if s.name.endswith("-vm"))
    assert vm.body["properties"]["osProfile"]["adminPassword"] == "P@ss"


def test_staging_group_and_storage_specs() -> None:
    owner = Owner("ns", "tmpl")
    group = resourcegroups.staging_group(SUB, "IT_x", "westus", owner, {"a": "b"}, adopted=False)
    assert group.id == f"/subscriptions/{SUB}/resourceGroups/IT_x"
    assert group.body["tags"]["createdBy"] == "kaib" and group.body["tags"]["imageTemplateName"] == "tmpl"
    assert resourcegroups.adoption_problem({}, owner) is None
    assert (
        resourcegroups.adoption_problem(
            {"imageTemplateName": "tmpl", "imageTemplateResourceGroupName": "ns"}, owner
        )
        is None
    )
    problem = resourcegroups.adoption_problem(
        {"imageTemplateName": "other", "imageTemplateResourceGroupName": "ns"}, owner
    )
    assert problem is not None and "ns/other" in problem
    container = storage.logs_container(SUB, "IT_x", "acct")
    assert container.id.endswith("/storageAccounts/acct/blobServices/default/containers/packerlogs")


def test_distribution_targets() -> None:
    vm_id = context().id(t.VM, "kaib-x-vm")
    dist = template_spec()["distribute"][0]
    image = compute.managed_image(
        {**dist, "artifactTags": {"release": "1"}}, vm_id, {"kaib.dev/managed-by": "kaib"}
    )
    assert image.resource_group == "net" and image.name == "golden" and image.type == t.IMAGE
    assert image.body["properties"]["sourceVirtualMachine"]["id"] == vm_id
    assert image.body["tags"]["release"] == "1"
    gallery = f"{USER_RG}/providers/Microsoft.Compute/galleries/g/images/def"
    shared = {
        "type": "SharedImage",
        "runOutputName": "s",
        "galleryImageId": gallery,
        "targetRegions": [{"name": "westus", "replicaCount": 2}],
        "excludeFromLatest": True,
    }
    version = compute.gallery_image_version(shared, "1.0.1", vm_id, "westus", {})
    assert version.id == f"{gallery}/versions/1.0.1"
    profile = version.body["properties"]["publishingProfile"]
    assert profile["targetRegions"] == [
        {"name": "westus", "regionalReplicaCount": 2, "storageAccountType": "Standard_LRS"}
    ]
    assert profile["excludeFromLatest"] is True


@pytest.mark.parametrize(
    ("existing", "major", "expected"),
    [
        (["1.0.0", "1.2.0", "2.0.0", "2.1.0", "0.1.2"], -1, "2.1.1"),
        (["1.0.0", "1.2.0", "2.0.0", "2.1.0", "0.1.2"], 1, "1.2.1"),
        (["1.0.0", "1.2.0", "2.0.0", "2.1.0", "0.1.2"], 0, "0.1.3"),
        ([], -1, "0.0.1"),
        (["1.0.0"], 3, "3.0.1"),
    ],
)
def test_latest_versioning(existing: list[str], major: int, expected: str) -> None:
    assert compute.next_version(existing, major) == expected


def test_container_state_reads_exit_code() -> None:
    group = {
        "properties": {
            "instanceView": {"state": "Succeeded"},
            "containers": [
                {
                    "name": "builder",
                    "properties": {
                        "instanceView": {
                            "currentState": {"state": "Terminated", "exitCode": 3, "detailStatus": "Error"}
                        }
                    },
                }
            ],
        }
    }
    state = containerinstance.container_state(group)
    assert state.terminated and state.exit_code == 3
    assert not containerinstance.container_state(
        {"properties": {"instanceView": {"state": "Running"}}}
    ).terminated


def test_adopted_group_gets_its_tags_added_once_and_keeps_its_own() -> None:
    owner = Owner("ns", "tmpl")
    group = resourcegroups.staging_group(SUB, "mine", "westus", owner, {}, adopted=True)
    body = group.parameters({"location": "westus", "tags": {"team": "x"}})
    assert body is not None and body["tags"]["team"] == "x" and body["tags"]["usedBy"] == "kaib"
    assert group.parameters({"location": "westus", "tags": body["tags"]}) is None
