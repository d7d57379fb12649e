"""The unmodified Azure SDK clients (sync) against the sandbox: every resource type, the ARM rules,
long-running operations and continuation tokens, the blob data plane."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_container_sas,
)

from tests.fixtures.sandbox import SandboxHandle

LOC = "westeurope"
ACI = "Microsoft.ContainerInstance/containerGroups"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ9sandbox test@kaib"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def group(sandbox: SandboxHandle) -> str:
    name = unique("rg-")
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(
        name, {"location": LOC, "tags": {"kaib.dev/owner": name}}
    )
    return name


def vnet_body(*subnets: dict[str, Any], prefix: str = "10.10.0.0/16") -> dict[str, Any]:
    return {
        "location": LOC,
        "properties": {"addressSpace": {"addressPrefixes": [prefix]}, "subnets": list(subnets)},
    }


def subnet(name: str, prefix: str, **props: Any) -> dict[str, Any]:
    return {"name": name, "properties": {"addressPrefix": prefix, **props}}


ACI_DELEGATION = {"delegations": [{"name": "aci", "properties": {"serviceName": ACI}}]}


def vm_body(nic_id: str, image: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "location": LOC,
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
            "storageProfile": {"imageReference": image, **extra},
            "osProfile": {
                "computerName": "build",
                "adminUsername": "packer",
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "ssh": {
                        "publicKeys": [{"path": "/home/packer/.ssh/authorized_keys", "keyData": SSH_KEY}]
                    },
                },
            },
            "networkProfile": {"networkInterfaces": [{"id": nic_id}]},
        },
    }


UBUNTU = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}


def make_nic(net: NetworkManagementClient, group: str, name: str, subnet_id: str) -> Any:
    body = {
        "location": LOC,
        "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet_id}}}]},
    }
    return net.network_interfaces.begin_create_or_update(group, name, body).result()


def test_requests_without_a_token_get_401(sandbox: SandboxHandle) -> None:
    subscription = sandbox.subscription_id
    url = f"{sandbox.arm_endpoint}/subscriptions/{subscription}/resourcegroups?api-version=2021-04-01"
    response = requests.get(url, verify=sandbox.ca_file, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AuthenticationFailed"
    bad = requests.get(url, verify=sandbox.ca_file, timeout=10, headers={"Authorization": "Bearer forged"})
    assert bad.status_code == 401


def test_resource_groups_providers_and_generic_resources(sandbox: SandboxHandle, group: str) -> None:
    rm = sandbox.client(ResourceManagementClient)
    assert rm.resource_groups.check_existence(group)
    assert rm.resource_groups.get(group).tags == {"kaib.dev/owner": group}
    assert group in [g.name for g in rm.resource_groups.list()]
    aci = rm.providers.get("Microsoft.ContainerInstance")
    assert aci.registration_state == "Registered"
    groups = next(t for t in aci.resource_types if t.resource_type == "containerGroups")
    assert "West Europe" in groups.locations
    msi = sandbox.client(ManagedServiceIdentityClient)
    identity = msi.user_assigned_identities.create_or_update(group, "builder-id", {"location": LOC})
    assert identity.client_id and identity.principal_id
    generic = rm.resources.get_by_id(identity.id, api_version="2023-01-31")
    assert generic.name == "builder-id" and generic.type == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert [r.name for r in rm.resources.list_by_resource_group(group)] == ["builder-id"]
    assert [i.name for i in msi.user_assigned_identities.list_by_resource_group(group)] == ["builder-id"]
    msi.user_assigned_identities.delete(group, "builder-id")
    with pytest.raises(ResourceNotFoundError):
        msi.user_assigned_identities.get(group, "builder-id")
    with pytest.raises(ResourceNotFoundError) as missing:
        rm.resource_groups.get(unique("nope-"))
    assert missing.value.error is not None and missing.value.error.code == "ResourceGroupNotFound"


def test_network_types_and_rules(sandbox: SandboxHandle, group: str) -> None:
    net = sandbox.client(NetworkManagementClient)
    nsg = net.network_security_groups.begin_create_or_update(
        group,
        "build-nsg",
        {
            "location": LOC,
            "properties": {
                "securityRules": [
                    {
                        "name": "ssh-from-aci",
                        "properties": {
                            "priority": 100,
                            "direction": "Inbound",
                            "access": "Allow",
                            "protocol": "Tcp",
                            "sourceAddressPrefix": "10.10.1.0/24",
                            "sourcePortRange": "*",
                            "destinationAddressPrefix": "10.10.2.0/24",
                            "destinationPortRanges": ["22", "5986"],
                        },
                    }
                ]
            },
        },
    ).result()
    assert [r.name for r in nsg.security_rules] == ["ssh-from-aci"] and len(nsg.default_security_rules) == 6
    rule = net.security_rules.begin_create_or_update(
        group,
        "build-nsg",
        "deny-rest",
        {
            "properties": {
                "priority": 4000,
                "direction": "Inbound",
                "access": "Deny",
                "protocol": "*",
                "sourceAddressPrefix": "*",
                "sourcePortRange": "*",
                "destinationAddressPrefix": "*",
                "destinationPortRange": "*",
            }
        },
    ).result()
    assert rule.provisioning_state == "Succeeded"
    vnet = net.virtual_networks.begin_create_or_update(
        group,
        "vnet",
        vnet_body(
            subnet("aci", "10.10.1.0/24", **ACI_DELEGATION),
            subnet("build", "10.10.2.0/24", networkSecurityGroup={"id": nsg.id}),
            subnet("pls", "10.10.3.0/24", privateLinkServiceNetworkPolicies="Disabled"),
        ),
    ).result()
    assert vnet.provisioning_state == "Succeeded" and [s.name for s in vnet.subnets] == [
        "aci",
        "build",
        "pls",
    ]
    ids = {s.name: s.id for s in vnet.subnets}
    assert net.subnets.get(group, "vnet", "aci").delegations[0].service_name == ACI
    assert [s.name for s in net.subnets.list(group, "vnet")] == ["aci", "build", "pls"]
    nic = make_nic(net, group, "build-nic", ids["build"])
    assert nic.ip_configurations[0].private_ip_address == "10.10.2.4"
    assert make_nic(net, group, "nic2", ids["build"]).ip_configurations[0].private_ip_address == "10.10.2.5"
    pip = net.public_ip_addresses.begin_create_or_update(group, "pip", {"location": LOC}).result()
    assert pip.ip_address
    lb = net.load_balancers.begin_create_or_update(
        group,
        "lb",
        {
            "location": LOC,
            "sku": {"name": "Standard"},
            "properties": {
                "frontendIPConfigurations": [{"name": "fe", "properties": {"subnet": {"id": ids["pls"]}}}],
                "backendAddressPools": [{"name": "be"}],
            },
        },
    ).result()
    fe = lb.frontend_ip_configurations[0]
    assert fe.private_ip_address == "10.10.3.4"
    pls = net.private_link_services.begin_create_or_update(
        group,
        "pls",
        {
            "location": LOC,
            "properties": {
                "loadBalancerFrontendIpConfigurations": [{"id": fe.id}],
                "ipConfigurations": [{"name": "nat", "properties": {"subnet": {"id": ids["pls"]}}}],
            },
        },
    ).result()
    assert pls.alias and pls.alias.startswith("pls.")
    pe = net.private_endpoints.begin_create_or_update(
        group,
        "pe",
        {
            "location": LOC,
            "properties": {
                "subnet": {"id": ids["aci"]},
                "privateLinkServiceConnections": [
                    {"name": "c", "properties": {"privateLinkServiceId": pls.id}}
                ],
            },
        },
    ).result()
    assert pe.private_link_service_connections[0].private_link_service_connection_state.status == "Approved"
    pe_nic_name = pe.network_interfaces[0].id.rsplit("/", 1)[-1]
    pe_nic = net.network_interfaces.get(group, pe_nic_name)
    assert pe_nic.ip_configurations[0].private_ip_address == "10.10.1.4"
    assert (
        net.private_link_services.get(group, "pls").private_endpoint_connections[0].private_endpoint.id
        == pe.id
    )
    assert {n.name for n in net.network_interfaces.list(group)} == {"build-nic", "nic2", pe_nic_name}

    def code_of(call: Any) -> str:
        with pytest.raises(HttpResponseError) as caught:
            call()
        assert caught.value.error is not None
        return str(caught.value.error.code)

    assert (
        code_of(lambda: net.network_interfaces.begin_delete(group, pe_nic_name).result())
        == "NicInUseWithPrivateEndpoint"
    )
    assert (
        code_of(lambda: net.load_balancers.begin_delete(group, "lb").result())
        == "LoadBalancerInUseByPrivateLinkService"
    )
    assert (
        code_of(lambda: net.subnets.begin_delete(group, "vnet", "build").result())
        == "InUseSubnetCannotBeDeleted"
    )
    assert code_of(lambda: net.network_security_groups.begin_delete(group, "build-nsg").result()) == (
        "InUseNetworkSecurityGroupCannotBeDeleted"
    )
    # A VNet PUT without subnets drops them: refused while one is in use.
    assert code_of(
        lambda: net.virtual_networks.begin_create_or_update(group, "vnet", vnet_body()).result()
    ) == ("InUseSubnetCannotBeDeleted")
    # A subnet outside the VNet, a reference to a missing NSG, one in another region.
    assert (
        code_of(
            lambda: net.subnets.begin_create_or_update(
                group, "vnet", "out", {"properties": {"addressPrefix": "10.99.0.0/24"}}
            ).result()
        )
        == "NetcfgSubnetRangeOutsideVnet"
    )
    assert code_of(
        lambda: net.subnets.begin_create_or_update(
            group,
            "vnet",
            "x",
            {
                "properties": {
                    "addressPrefix": "10.10.9.0/24",
                    "networkSecurityGroup": {"id": nsg.id + "-missing"},
                }
            },
        ).result()
    ) == ("InvalidResourceReference")
    far = net.network_security_groups.begin_create_or_update(
        group, "far-nsg", {"location": "eastus"}
    ).result()
    assert (
        code_of(
            lambda: net.subnets.begin_create_or_update(
                group,
                "vnet",
                "x",
                {"properties": {"addressPrefix": "10.10.9.0/24", "networkSecurityGroup": {"id": far.id}}},
            ).result()
        )
        == "InvalidResourceReference"
    )
    # Cleanup in dependency order succeeds, and the VNet PUT without subnets then drops the free ones.
    net.private_endpoints.begin_delete(group, "pe").result()
    with pytest.raises(ResourceNotFoundError):
        net.network_interfaces.get(group, pe_nic_name)
    net.private_link_services.begin_delete(group, "pls").result()
    net.load_balancers.begin_delete(group, "lb").result()
    for name in ("build-nic", "nic2"):
        net.network_interfaces.begin_delete(group, name).result()
    net.public_ip_addresses.begin_delete(group, "pip").result()
    vnet = net.virtual_networks.begin_create_or_update(group, "vnet", vnet_body()).result()
    assert not vnet.subnets
    net.network_security_groups.begin_delete(group, "build-nsg").result()
    net.virtual_networks.begin_delete(group, "vnet").result()
    assert list(net.virtual_networks.list(group)) == []


def test_compute_vm_images_galleries(sandbox: SandboxHandle, group: str) -> None:
    net = sandbox.client(NetworkManagementClient)
    compute = sandbox.client(ComputeManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(
        group, "vnet", vnet_body(subnet("b", "10.10.2.0/24"))
    ).result()
    nic = make_nic(net, group, "nic", vnet.subnets[0].id)
    latest = compute.virtual_machine_images.list(LOC, "Canonical", "ubuntu-24_04-lts", "server")
    assert latest[-1].name == "24.04.202411030"
    assert [o.name for o in compute.virtual_machine_images.list_offers(LOC, "Canonical")] == [
        "ubuntu-24_04-lts",
        "0001-com-ubuntu-server-jammy",
    ]
    vm = compute.virtual_machines.begin_create_or_update(group, "vm", vm_body(nic.id, UBUNTU)).result()
    assert (
        vm.provisioning_state == "Succeeded"
        and vm.storage_profile.image_reference.exact_version == "24.04.202411030"
    )
    assert vm.os_profile.admin_password is None
    disk_name = vm.storage_profile.os_disk.name
    assert compute.disks.get(group, disk_name).disk_state == "Attached"
    usage = {u.name.value: u.current_value for u in compute.usage.list(LOC)}
    assert usage["cores"] >= 2
    compute.virtual_machines.begin_deallocate(group, "vm").result()
    compute.virtual_machines.generalize(group, "vm")
    view = compute.virtual_machines.instance_view(group, "vm")
    assert {"PowerState/deallocated", "OSState/generalized"} <= {s.code for s in view.statuses}
    expanded = compute.virtual_machines.get(group, "vm", expand="instanceView")
    assert expanded.instance_view is not None
    capture = compute.virtual_machines.begin_capture(
        group, "vm", {"vhdPrefix": "cap", "destinationContainerName": "c", "overwriteVhds": True}
    ).result()
    assert capture is not None
    image = compute.images.begin_create_or_update(
        group, "img", {"location": LOC, "properties": {"sourceVirtualMachine": {"id": vm.id}}}
    ).result()
    assert image.storage_profile.os_disk.os_state == "Generalized"
    gallery = compute.galleries.begin_create_or_update(group, "gal", {"location": LOC}).result()
    assert gallery.identifier.unique_name
    compute.gallery_images.begin_create_or_update(
        group,
        "gal",
        "ubuntu",
        {
            "location": LOC,
            "properties": {
                "osType": "Linux",
                "osState": "Generalized",
                "hyperVGeneration": "V2",
                "identifier": {"publisher": "kaib", "offer": "golden", "sku": "24"},
            },
        },
    ).result()
    version = compute.gallery_image_versions.begin_create_or_update(
        group,
        "gal",
        "ubuntu",
        "1.0.0",
        {
            "location": LOC,
            "properties": {
                "storageProfile": {"source": {"id": image.id}},
                "publishingProfile": {"targetRegions": [{"name": LOC}, {"name": "northeurope"}]},
            },
        },
    ).result()
    assert [r.name for r in version.publishing_profile.target_regions] == [LOC, "northeurope"]
    replicated = compute.gallery_image_versions.get(
        group, "gal", "ubuntu", "1.0.0", expand="ReplicationStatus"
    )
    assert replicated.replication_status.aggregated_state == "Completed"
    with pytest.raises(HttpResponseError) as bad_name:
        compute.gallery_image_versions.begin_create_or_update(
            group,
            "gal",
            "ubuntu",
            "latest",
            {"location": LOC, "properties": {"storageProfile": {"source": {"id": image.id}}}},
        ).result()
    assert bad_name.value.error is not None and bad_name.value.error.code == "InvalidParameter"
    # VMs from the managed image and from the gallery (by version and by image = latest).
    for name, ref in (
        ("from-img", {"id": image.id}),
        ("from-ver", {"id": version.id}),
        ("from-latest", {"id": version.id.rsplit("/versions/", 1)[0]}),
    ):
        made = compute.virtual_machines.begin_create_or_update(
            group,
            name,
            vm_body(
                make_nic(net, group, f"nic-{name}", vnet.subnets[0].id).id,
                ref,
                osDisk={"createOption": "FromImage", "deleteOption": "Delete"},
            ),
        ).result()
        assert made.provisioning_state == "Succeeded"
        disk = made.storage_profile.os_disk.name
        compute.virtual_machines.begin_delete(group, name).result()
        with pytest.raises(ResourceNotFoundError):
            compute.disks.get(group, disk)  # deleteOption Delete takes the disk along
    data = compute.disks.begin_create_or_update(
        group,
        "data",
        {"location": LOC, "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 8}},
    ).result()
    assert data.disk_state == "Unattached"
    compute.disks.begin_delete(group, "data").result()
    with pytest.raises(HttpResponseError) as attached:
        compute.disks.begin_delete(group, disk_name).result()
    assert attached.value.status_code == 409
    compute.virtual_machines.begin_delete(group, "vm").result()
    compute.disks.begin_delete(group, disk_name).result()  # detached by default, deleted on its own
    compute.gallery_image_versions.begin_delete(group, "gal", "ubuntu", "1.0.0").result()
    compute.images.begin_delete(group, "img").result()
    assert [v.name for v in compute.virtual_machines.list(group)] == []


def test_unknown_platform_image_and_missing_osprofile(sandbox: SandboxHandle, group: str) -> None:
    net = sandbox.client(NetworkManagementClient)
    compute = sandbox.client(ComputeManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(
        group, "vnet", vnet_body(subnet("b", "10.10.2.0/24"))
    ).result()
    nic = make_nic(net, group, "nic", vnet.subnets[0].id)
    bad = dict(UBUNTU, sku="no-such-sku")
    with pytest.raises(ResourceNotFoundError) as caught:
        compute.virtual_machines.begin_create_or_update(group, "vm", vm_body(nic.id, bad)).result()
    assert caught.value.error is not None and caught.value.error.code == "PlatformImageNotFound"
    windows = {
        "publisher": "MicrosoftWindowsServer",
        "offer": "WindowsServer",
        "sku": "2022-datacenter-azure-edition",
        "version": "latest",
    }
    body = vm_body(nic.id, windows)
    body["properties"]["osProfile"]["adminPassword"] = "S3cret-Passw0rd!"
    made = compute.virtual_machines.begin_create_or_update(group, "win", body).result()
    assert made.storage_profile.os_disk.os_type == "Windows" and made.os_profile.admin_password is None


def test_container_group_in_delegated_subnet_with_outcome(sandbox: SandboxHandle, group: str) -> None:
    net = sandbox.client(NetworkManagementClient)
    aci = sandbox.client(ContainerInstanceManagementClient)
    storage = sandbox.client(StorageManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(
        group,
        "vnet",
        vnet_body(subnet("aci", "10.10.1.0/24", **ACI_DELEGATION), subnet("plain", "10.10.2.0/24")),
    ).result()
    account_name = unique("kaiblogs")
    account = storage.storage_accounts.begin_create(
        group, account_name, {"location": LOC, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
    ).result()
    key = storage.storage_accounts.list_keys(group, account_name).keys_property[0].value
    blob_service = BlobServiceClient(
        account.primary_endpoints.blob, credential={"account_name": account_name, "account_key": key}
    )
    blob_service.create_container("packerlogs")
    sas = generate_container_sas(
        account_name,
        "packerlogs",
        account_key=key,
        permission=ContainerSasPermissions(read=True, write=True, create=True, add=True),
        expiry=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
    )
    container_url = f"{account.primary_endpoints.blob}packerlogs?{sas}"
    sandbox.add_outcome("cg-fail-*", exitCode=3, logs="step 2 failed\n", seconds=0)

    def group_body(subnet_id: str) -> dict[str, Any]:
        return {
            "location": LOC,
            "properties": {
                "osType": "Linux",
                "restartPolicy": "Never",
                "subnetIds": [{"id": subnet_id}],
                "ipAddress": {"type": "Private", "ports": [{"port": 8080, "protocol": "TCP"}]},
                "containers": [
                    {
                        "name": "builder",
                        "properties": {
                            "image": "kaib/builder:test",
                            "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                            "environmentVariables": [
                                {"name": "KAIB_BUILD_ID", "value": "build-1"},
                                {"name": "KAIB_LOG_CONTAINER_URL", "secureValue": container_url},
                            ],
                        },
                    }
                ],
            },
        }

    with pytest.raises(HttpResponseError) as undelegated:
        aci.container_groups.begin_create_or_update(group, "cg-bad", group_body(vnet.subnets[1].id)).result()
    assert undelegated.value.error is not None and undelegated.value.error.code == "SubnetNotDelegated"
    name = "cg-fail-1"
    made = aci.container_groups.begin_create_or_update(group, name, group_body(vnet.subnets[0].id)).result()
    assert made.ip_address.ip == "10.10.1.4"
    deadline = time.monotonic() + 20
    while True:
        got = aci.container_groups.get(group, name)
        state = got.containers[0].instance_view.current_state
        if state.state == "Terminated" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert state.state == "Terminated" and state.exit_code == 3 and got.instance_view.state == "Failed"
    secure = next(e for e in got.containers[0].environment_variables if e.name == "KAIB_LOG_CONTAINER_URL")
    assert secure.secure_value is None and secure.value is None
    assert "step 2 failed" in aci.containers.list_logs(group, name, "builder").content
    listed = [g for g in aci.container_groups.list_by_resource_group(group)]
    assert listed[0].instance_view is None
    logs = ContainerClient.from_container_url(container_url)
    result = json.loads(logs.download_blob("build-1/result.json").readall())
    assert result["status"] == "Failed" and result["phases"][0]["exitCode"] == 3 and not result["imageReady"]
    assert b"PACKER OUT step 2 failed" in logs.download_blob("build-1/customization.log").readall()
    usage = {u.name.value: u.current_value for u in aci.location.list_usage(LOC)}
    assert usage["ContainerGroups"] >= 1
    with pytest.raises(HttpResponseError) as in_use:
        net.subnets.begin_delete(group, "vnet", "aci").result()
    assert in_use.value.error is not None and in_use.value.error.code == "InUseSubnetCannotBeDeleted"
    aci.container_groups.begin_delete(group, name).result()
    net.subnets.begin_delete(group, "vnet", "aci").result()


def test_storage_account_keys_sas_and_append_blob(sandbox: SandboxHandle, group: str) -> None:
    storage = sandbox.client(StorageManagementClient)
    name = unique("kaibst")
    assert storage.storage_accounts.check_name_availability(
        {"name": name, "type": "Microsoft.Storage/storageAccounts"}
    ).name_available
    account = storage.storage_accounts.begin_create(
        group, name, {"location": LOC, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
    ).result()
    assert account.provisioning_state == "Succeeded"
    sas = storage.storage_accounts.list_account_sas(
        group,
        name,
        {
            "signedServices": "b",
            "signedResourceTypes": "sco",
            "signedPermission": "rwacl",
            "signedExpiry": (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        },
    )
    service = BlobServiceClient(f"{account.primary_endpoints.blob}?{sas.account_sas_token}")
    service.create_container("packerlogs")
    blob = service.get_blob_client("packerlogs", "b1/customization.log")
    blob.create_append_blob()
    for i in range(3):
        blob.append_block(f"line {i}\n".encode())
    assert blob.download_blob().readall() == b"line 0\nline 1\nline 2\n"
    other = unique("rg-")
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(other, {"location": LOC})
    with pytest.raises(HttpResponseError) as taken:  # names are global, as in Azure
        storage.storage_accounts.begin_create(
            other, name, {"location": LOC, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
        ).result()
    assert taken.value.error is not None and taken.value.error.code == "StorageAccountAlreadyTaken"
    storage.storage_accounts.delete(group, name)
    assert name not in [a.name for a in storage.storage_accounts.list_by_resource_group(group)]


def test_group_delete_cascades_and_inventory(sandbox: SandboxHandle, group: str) -> None:
    net = sandbox.client(NetworkManagementClient)
    rm = sandbox.client(ResourceManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(
        group, "vnet", {**vnet_body(subnet("b", "10.10.2.0/24")), "tags": {"kaib.dev/owner": group}}
    ).result()
    make_nic(net, group, "nic", vnet.subnets[0].id)
    inventory = sandbox.inventory(tag=f"kaib.dev/owner={group}")
    assert {i["type"] for i in inventory} == {
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Resources/resourceGroups",
    }
    assert sandbox.counters()["byOwner"].get(f"kaib.dev/owner={group}", 0) >= 1
    rm.resource_groups.begin_delete(group).result()
    assert not rm.resource_groups.check_existence(group)
    assert [i for i in sandbox.inventory() if f"/resourceGroups/{group}/" in i["id"]] == []


def test_continuation_token_resumed_by_a_new_client(sandbox: SandboxHandle, group: str) -> None:
    sandbox.set_latency(**{"Microsoft.Network/virtualNetworks:put": 300})  # 0.6 s at the test scale
    try:
        first = sandbox.client(NetworkManagementClient)
        poller = first.virtual_networks.begin_create_or_update(group, "slow", vnet_body())
        token = poller.continuation_token()
        assert first.virtual_networks.get(group, "slow").provisioning_state in ("Creating", "Updating")
        second = sandbox.client(NetworkManagementClient)
        resumed = second.virtual_networks.begin_create_or_update(
            group, "slow", None, continuation_token=token
        )
        assert resumed.result().provisioning_state == "Succeeded"
    finally:
        sandbox.set_latency(**{"Microsoft.Network/virtualNetworks:put": 4})
    ops = [r for r in sandbox.requests() if "/operations/" in r["path"]]
    assert ops, "the resumed poller polled the Azure-AsyncOperation URL"
