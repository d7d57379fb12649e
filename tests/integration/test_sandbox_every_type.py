"""Create, get, list and delete of every resource type, through the sync and the aio SDK clients."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.aio import ComputeManagementClient as AioCompute
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient as AioAci
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.msi.aio import ManagedServiceIdentityClient as AioMsi
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.aio import NetworkManagementClient as AioNetwork
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources.aio import ResourceManagementClient as AioResources
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.storage.aio import StorageManagementClient as AioStorage

from tests.fixtures.sandbox import SandboxHandle

LOC = "westeurope"
SYNC = {
    "resource": ResourceManagementClient,
    "network": NetworkManagementClient,
    "compute": ComputeManagementClient,
    "aci": ContainerInstanceManagementClient,
    "storage": StorageManagementClient,
    "msi": ManagedServiceIdentityClient,
}
AIO = {
    "resource": AioResources,
    "network": AioNetwork,
    "compute": AioCompute,
    "aci": AioAci,
    "storage": AioStorage,
    "msi": AioMsi,
}


@dataclass
class Kind:
    """One resource type: how to create, get, list and delete it through its operations group."""

    client: str
    ops: str
    names: tuple[str, ...]  # parent names then the resource's own
    body: Any
    create: str = "begin_create_or_update"
    get: str = "get"
    list: str = "list"
    delete: str = "begin_delete"
    get_kwargs: dict[str, Any] = field(default_factory=dict)


def kinds(sub: str, group: str, storage_name: str) -> list[Kind]:
    rg = f"/subscriptions/{sub}/resourceGroups/{group}/providers"
    subnet = f"{rg}/Microsoft.Network/virtualNetworks/vnet/subnets"
    nic = {
        "location": LOC,
        "properties": {
            "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": f"{subnet}/vms"}}}]
        },
    }
    return [
        Kind(
            "msi",
            "user_assigned_identities",
            ("id",),
            {"location": LOC},
            create="create_or_update",
            list="list_by_resource_group",
            delete="delete",
        ),
        Kind(
            "storage",
            "storage_accounts",
            (storage_name,),
            {"location": LOC, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}},
            create="begin_create",
            get="get_properties",
            list="list_by_resource_group",
            delete="delete",
        ),
        Kind("network", "network_security_groups", ("nsg",), {"location": LOC}),
        Kind(
            "network",
            "security_rules",
            ("nsg", "rule"),
            {
                "properties": {
                    "priority": 100,
                    "direction": "Inbound",
                    "access": "Allow",
                    "protocol": "Tcp",
                    "sourcePortRange": "*",
                    "sourceAddressPrefix": "*",
                    "destinationAddressPrefix": "*",
                    "destinationPortRange": "22",
                }
            },
        ),
        Kind(
            "network",
            "virtual_networks",
            ("vnet",),
            {"location": LOC, "properties": {"addressSpace": {"addressPrefixes": ["10.7.0.0/16"]}}},
        ),
        Kind("network", "subnets", ("vnet", "vms"), {"properties": {"addressPrefix": "10.7.1.0/24"}}),
        Kind(
            "network",
            "subnets",
            ("vnet", "aci"),
            {
                "properties": {
                    "addressPrefix": "10.7.2.0/24",
                    "delegations": [
                        {
                            "name": "d",
                            "properties": {"serviceName": "Microsoft.ContainerInstance/containerGroups"},
                        }
                    ],
                    "privateLinkServiceNetworkPolicies": "Disabled",
                }
            },
        ),
        Kind("network", "public_ip_addresses", ("pip",), {"location": LOC}),
        Kind(
            "network",
            "load_balancers",
            ("lb",),
            {
                "location": LOC,
                "properties": {
                    "frontendIPConfigurations": [
                        {"name": "fe", "properties": {"subnet": {"id": f"{subnet}/aci"}}}
                    ]
                },
            },
        ),
        Kind(
            "network",
            "private_link_services",
            ("pls",),
            {
                "location": LOC,
                "properties": {
                    "loadBalancerFrontendIpConfigurations": [
                        {"id": f"{rg}/Microsoft.Network/loadBalancers/lb/frontendIPConfigurations/fe"}
                    ],
                    "ipConfigurations": [{"name": "n", "properties": {"subnet": {"id": f"{subnet}/aci"}}}],
                },
            },
        ),
        Kind(
            "network",
            "private_endpoints",
            ("pe",),
            {
                "location": LOC,
                "properties": {
                    "subnet": {"id": f"{subnet}/vms"},
                    "privateLinkServiceConnections": [
                        {
                            "name": "c",
                            "properties": {
                                "privateLinkServiceId": f"{rg}/Microsoft.Network/privateLinkServices/pls"
                            },
                        }
                    ],
                },
            },
        ),
        Kind("network", "network_interfaces", ("nic",), nic),
        Kind(
            "compute",
            "disks",
            ("disk",),
            {"location": LOC, "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 4}},
            list="list_by_resource_group",
        ),
        Kind(
            "compute",
            "virtual_machines",
            ("vm",),
            {
                "location": LOC,
                "properties": {
                    "hardwareProfile": {"vmSize": "Standard_B2s"},
                    "storageProfile": {
                        "imageReference": {
                            "publisher": "Canonical",
                            "offer": "ubuntu-24_04-lts",
                            "sku": "server",
                            "version": "latest",
                        },
                        "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"},
                    },
                    "osProfile": {"computerName": "vm", "adminUsername": "u", "adminPassword": "Pa55word!-x"},
                    "networkProfile": {
                        "networkInterfaces": [{"id": f"{rg}/Microsoft.Network/networkInterfaces/nic"}]
                    },
                },
            },
        ),
        Kind("compute", "galleries", ("gal",), {"location": LOC}, list="list_by_resource_group"),
        Kind(
            "compute",
            "gallery_images",
            ("gal", "img"),
            {
                "location": LOC,
                "properties": {
                    "osType": "Linux",
                    "osState": "Generalized",
                    "identifier": {"publisher": "p", "offer": "o", "sku": "s"},
                },
            },
            list="list_by_gallery",
        ),
        Kind(
            "aci",
            "container_groups",
            ("cg",),
            {
                "location": LOC,
                "properties": {
                    "osType": "Linux",
                    "restartPolicy": "Never",
                    "subnetIds": [{"id": f"{subnet}/aci"}],
                    "containers": [
                        {
                            "name": "c",
                            "properties": {
                                "image": "busybox",
                                "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
                            },
                        }
                    ],
                },
            },
            list="list_by_resource_group",
        ),
    ]


async def resolve(value: Any) -> Any:
    """Await what the aio clients return; finish pollers (sync or aio) on the way."""
    if inspect.isawaitable(value):
        value = await value
    if hasattr(value, "result") and hasattr(value, "continuation_token"):
        value = value.result()
        if inspect.isawaitable(value):
            value = await value
    return value


async def collect(pages: Any) -> list[Any]:
    if hasattr(pages, "__aiter__"):
        return [item async for item in pages]
    return list(pages)


async def exercise(clients: dict[str, Any], group: str, sub: str) -> None:
    await resolve(clients["resource"].resource_groups.create_or_update(group, {"location": LOC}))
    table = kinds(sub, group, f"kaibevery{uuid.uuid4().hex[:8]}")
    for kind in table:
        ops = getattr(clients[kind.client], kind.ops)
        made = await resolve(getattr(ops, kind.create)(group, *kind.names, kind.body))
        assert made.name == kind.names[-1], kind.ops
        got = await resolve(getattr(ops, kind.get)(group, *kind.names))
        assert got.id == made.id, kind.ops
        listed = await collect(getattr(ops, kind.list)(group, *kind.names[:-1]))
        assert made.id in [item.id for item in listed], kind.ops
    for kind in reversed(table):  # dependents first
        ops = getattr(clients[kind.client], kind.ops)
        await resolve(getattr(ops, kind.delete)(group, *kind.names))
        with pytest.raises(ResourceNotFoundError):
            await resolve(getattr(ops, kind.get)(group, *kind.names))
    leftovers = await collect(clients["resource"].resources.list_by_resource_group(group))
    assert leftovers == [], [r.id for r in leftovers]
    await resolve(clients["resource"].resource_groups.begin_delete(group))


def test_every_type_sync(sandbox: SandboxHandle) -> None:
    clients = {name: sandbox.client(cls) for name, cls in SYNC.items()}
    asyncio.run(exercise(clients, f"rg-every-{uuid.uuid4().hex[:6]}", sandbox.subscription_id))


def test_every_type_aio(sandbox: SandboxHandle) -> None:
    async def run() -> None:
        clients = {name: sandbox.aio_client(cls) for name, cls in AIO.items()}
        try:
            await exercise(clients, f"rg-every-{uuid.uuid4().hex[:6]}", sandbox.subscription_id)
        finally:
            for client in clients.values():
                await client.close()

    asyncio.run(run())
