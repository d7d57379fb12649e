"""Injected faults, policy, quotas and provider registration reach the SDK caller as ARM says them;
the aio clients; stopping leaves nothing; --state keeps resources and blobs across a restart."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.compute.aio import ComputeManagementClient as AioCompute
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient as AioAci
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.aio import NetworkManagementClient as AioNetwork
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources.aio import ResourceManagementClient as AioResources
from azure.mgmt.storage import StorageManagementClient
from azure.storage.blob import BlobServiceClient

from tests.fixtures.sandbox import SandboxHandle, start_sandbox, stop_sandbox

LOC = "westeurope"


@pytest.fixture
def group(sandbox: SandboxHandle) -> Iterator[str]:
    name = f"rg-{uuid.uuid4().hex[:8]}"
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(name, {"location": LOC})
    yield name
    sandbox.clear_faults()
    sandbox.call("DELETE", "policies")


def vnet(prefix: str = "10.1.0.0/16") -> dict[str, Any]:
    return {"location": LOC, "properties": {"addressSpace": {"addressPrefixes": [prefix]}}}


def error_of(call: Any) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as caught:
        call()
    return caught.value


def test_429_with_retry_after_is_retried_and_succeeds(sandbox: SandboxHandle, group: str) -> None:
    sandbox.add_fault(
        status=429, code="TooManyRequests", method="PUT", name="throttled", count=1, retryAfter=1
    )
    net = sandbox.client(NetworkManagementClient)
    made = net.virtual_networks.begin_create_or_update(group, "throttled", vnet()).result()
    assert made.provisioning_state == "Succeeded"
    statuses = [r["status"] for r in sandbox.requests() if r["name"] == "throttled" and r["method"] == "PUT"]
    assert statuses == [429, 201]


def test_fault_rules_listed_and_removed_one_by_one(sandbox: SandboxHandle) -> None:
    first = sandbox.add_fault(status=500, code="InternalServerError", name="never-1")
    second = sandbox.add_fault(status=503, code="ServiceUnavailable", name="never-2", probability=0.5)
    sandbox.remove_fault(first["id"])
    assert [f["id"] for f in sandbox.call("GET", "faults")] == [second["id"]]
    sandbox.clear_faults()
    assert sandbox.call("GET", "faults") == []


def test_another_operation_in_progress_reaches_the_caller(sandbox: SandboxHandle, group: str) -> None:
    sandbox.add_fault(
        status=409,
        code="AnotherOperationInProgress",
        method="PUT",
        name="busy",
        message="Operation 'PUT' on resource 'busy' is not allowed: another operation is in progress.",
    )
    error = error_of(
        lambda: (
            sandbox.client(NetworkManagementClient)
            .virtual_networks.begin_create_or_update(group, "busy", vnet())
            .result()
        )
    )
    assert isinstance(error, ResourceExistsError)  # what azure-core maps 409 to: must not mean "exists"
    assert error.error is not None and error.error.code == "AnotherOperationInProgress"
    assert "another operation is in progress" in str(error.error.message)


def test_policy_denial(sandbox: SandboxHandle, group: str) -> None:
    sandbox.add_policy(
        "Microsoft.Network/publicIPAddresses", "Public IPs are not allowed in this subscription."
    )
    error = error_of(
        lambda: (
            sandbox.client(NetworkManagementClient)
            .public_ip_addresses.begin_create_or_update(group, "pip", {"location": LOC})
            .result()
        )
    )
    assert error.status_code == 403 and error.error is not None
    assert error.error.code == "RequestDisallowedByPolicy"
    assert "Public IPs are not allowed" in str(error.error.message)


def test_quota_error_synchronous_and_in_operation(sandbox: SandboxHandle, group: str) -> None:
    sandbox.set_quota("aci", ContainerGroups=0)
    try:
        aci_body = {
            "location": LOC,
            "properties": {
                "osType": "Linux",
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
        }

        aci = sandbox.client(ContainerInstanceManagementClient)
        error = error_of(lambda: aci.container_groups.begin_create_or_update(group, "cg", aci_body).result())
        assert error.error is not None and error.error.code == "ContainerGroupQuotaReached"
    finally:
        sandbox.set_quota("aci", ContainerGroups=100)
    # As Azure also does it: accepted, then the long-running operation fails with the quota error.
    sandbox.add_fault(
        status=409,
        code="OperationNotAllowed",
        method="PUT",
        name="lro-quota",
        inOperation=True,
        message="Operation could not be completed as it results in exceeding approved cores quota.",
    )
    net = sandbox.client(NetworkManagementClient)
    error = error_of(lambda: net.virtual_networks.begin_create_or_update(group, "lro-quota", vnet()).result())
    assert error.error is not None and error.error.code == "OperationNotAllowed"
    assert net.virtual_networks.get(group, "lro-quota").provisioning_state == "Failed"


def test_missing_subscription_registration(sandbox: SandboxHandle, group: str) -> None:
    sandbox.set_provider("Microsoft.Storage", "NotRegistered")
    # The SDK's ARM pipeline registers the provider itself when it may; a principal without that
    # right (as the operator's usually is) gets the 409 back. Model the missing right.
    sandbox.add_fault(
        status=403,
        code="AuthorizationFailed",
        method="POST",
        type="Microsoft.Storage/register",
        message="The client does not have authorization to perform action "
        "'Microsoft.Storage/register/action'.",
    )
    try:
        rm = sandbox.client(ResourceManagementClient)
        assert rm.providers.get("Microsoft.Storage").registration_state == "NotRegistered"
        storage = sandbox.client(StorageManagementClient)
        error = error_of(
            lambda: storage.storage_accounts.begin_create(
                group,
                f"kaib{uuid.uuid4().hex[:10]}",
                {"location": LOC, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}},
            ).result()
        )
        assert error.status_code == 409 and error.error is not None
        assert error.error.code == "MissingSubscriptionRegistration"
        assert "namespace 'Microsoft.Storage'" in str(error.error.message)
        sandbox.clear_faults()
        rm.providers.register("Microsoft.Storage")
        assert rm.providers.get("Microsoft.Storage").registration_state == "Registered"
    finally:
        sandbox.set_provider("Microsoft.Storage", "Registered")


def test_throttling_model(sandbox: SandboxHandle) -> None:
    sandbox.set_throttling(True)
    try:
        import requests

        token = sandbox.credential().get_token("https://management.azure.com/.default").token
        url = f"{sandbox.arm_endpoint}/subscriptions/{uuid.uuid4()}/resourcegroups/x?api-version=2021-04-01"
        statuses = []
        with requests.Session() as s:
            for _ in range(210):
                r = s.put(
                    url,
                    json={"location": LOC},
                    headers={"Authorization": f"Bearer {token}"},
                    verify=sandbox.ca_file,
                    timeout=10,
                )
                statuses.append(r.status_code)
        assert statuses.count(429) >= 1 and statuses[0] == 201
        assert (
            r.headers.get("Retry-After") and r.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
        )
    finally:
        sandbox.set_throttling(False)


def test_aio_clients_create_get_list_delete(sandbox: SandboxHandle) -> None:
    asyncio.run(_aio_round_trip(sandbox))


async def _aio_round_trip(sandbox: SandboxHandle) -> None:
    name = f"rg-{uuid.uuid4().hex[:8]}"
    async with (
        sandbox.aio_client(AioResources) as rm,
        sandbox.aio_client(AioNetwork) as net,
        sandbox.aio_client(AioCompute) as compute,
        sandbox.aio_client(AioAci) as aci,
    ):
        await rm.resource_groups.create_or_update(name, {"location": LOC})
        poller = await net.virtual_networks.begin_create_or_update(
            name,
            "vnet",
            {
                **vnet(),
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                    "subnets": [
                        {
                            "name": "aci",
                            "properties": {
                                "addressPrefix": "10.1.1.0/24",
                                "delegations": [
                                    {
                                        "name": "d",
                                        "properties": {
                                            "serviceName": "Microsoft.ContainerInstance/containerGroups"
                                        },
                                    }
                                ],
                            },
                        },
                        {"name": "b", "properties": {"addressPrefix": "10.1.2.0/24"}},
                    ],
                },
            },
        )
        made = await poller.result()
        assert made.provisioning_state == "Succeeded"
        nic = await (
            await net.network_interfaces.begin_create_or_update(
                name,
                "nic",
                {
                    "location": LOC,
                    "properties": {
                        "ipConfigurations": [
                            {"name": "ip", "properties": {"subnet": {"id": made.subnets[1].id}}}
                        ]
                    },
                },
            )
        ).result()
        vm = await (
            await compute.virtual_machines.begin_create_or_update(
                name,
                "vm",
                {
                    "location": LOC,
                    "properties": {
                        "hardwareProfile": {"vmSize": "Standard_B2s"},
                        "storageProfile": {
                            "imageReference": {
                                "publisher": "Canonical",
                                "offer": "0001-com-ubuntu-server-jammy",
                                "sku": "22_04-lts-gen2",
                                "version": "latest",
                            }
                        },
                        "osProfile": {
                            "computerName": "vm",
                            "adminUsername": "u",
                            "adminPassword": "Pa55word!-x",
                        },
                        "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
                    },
                },
            )
        ).result()
        assert vm.storage_profile.image_reference.exact_version.startswith("22.04.")
        cg = await (
            await aci.container_groups.begin_create_or_update(
                name,
                "cg",
                {
                    "location": LOC,
                    "properties": {
                        "osType": "Linux",
                        "restartPolicy": "Never",
                        "subnetIds": [{"id": made.subnets[0].id}],
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
            )
        ).result()
        assert cg.provisioning_state == "Succeeded"
        assert [v.name async for v in compute.virtual_machines.list(name)] == ["vm"]
        assert [v.name async for v in net.virtual_networks.list(name)] == ["vnet"]
        await (await compute.virtual_machines.begin_delete(name, "vm")).result()
        await (await aci.container_groups.begin_delete(name, "cg")).result()
        await (await rm.resource_groups.begin_delete(name)).result()
        assert not await rm.resource_groups.check_existence(name)


def test_state_file_keeps_resources_and_blobs_and_stop_leaves_nothing(tmp_path: Any) -> None:
    state = tmp_path / "sandbox.json"
    saved = dict(os.environ)
    first = start_sandbox("--state", str(state))
    try:
        os.environ.update(first.env)
        rm = first.client(ResourceManagementClient)
        rm.resource_groups.create_or_update("kept", {"location": LOC, "tags": {"a": "b"}})
        storage = first.client(StorageManagementClient)
        account = storage.storage_accounts.begin_create(
            "kept", "kaibkept", {"location": LOC, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
        ).result()
        key = storage.storage_accounts.list_keys("kept", "kaibkept").keys_property[0].value
        blobs = BlobServiceClient(
            account.primary_endpoints.blob, credential={"account_name": "kaibkept", "account_key": key}
        )
        blobs.create_container("logs")
        blobs.get_blob_client("logs", "a.txt").upload_blob(b"kept")
        aci = first.client(ContainerInstanceManagementClient)
        aci.container_groups.begin_create_or_update(
            "kept",
            "cg",
            {
                "location": LOC,
                "properties": {
                    "osType": "Linux",
                    "restartPolicy": "Never",
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
        ).result()
        deadline = time.monotonic() + 20
        while aci.container_groups.get("kept", "cg").instance_view.state != "Succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # A tags-only update does not run the group again.
        aci.container_groups.update("kept", "cg", {"tags": {"x": "y"}})
        assert aci.container_groups.get("kept", "cg").instance_view.state == "Succeeded"
    finally:
        stop_sandbox(first)  # asserts no process or port is left
        os.environ.clear()
        os.environ.update(saved)
    second = start_sandbox("--state", str(state))
    try:
        os.environ.update(second.env)
        rm = second.client(ResourceManagementClient)
        assert rm.resource_groups.get("kept").tags == {"a": "b"}
        storage = second.client(StorageManagementClient)
        account = storage.storage_accounts.get_properties("kept", "kaibkept")
        key = storage.storage_accounts.list_keys("kept", "kaibkept").keys_property[0].value
        blobs = BlobServiceClient(
            account.primary_endpoints.blob, credential={"account_name": "kaibkept", "account_key": key}
        )
        assert blobs.get_blob_client("logs", "a.txt").download_blob().readall() == b"kept"
        aci = second.client(ContainerInstanceManagementClient)
        kept = aci.container_groups.get("kept", "cg")
        assert kept.instance_view.state == "Succeeded" and kept.tags == {"x": "y"}
        assert kept.containers[0].instance_view.current_state.exit_code == 0
        assert "modelled run" in aci.containers.list_logs("kept", "cg", "c").content
    finally:
        stop_sandbox(second)
        os.environ.clear()
        os.environ.update(saved)
