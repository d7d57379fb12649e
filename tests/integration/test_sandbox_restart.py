"""A sandbox restarted with --state answers as if it had never stopped: the same ports (so operation,
storage and SAS URLs made before still work), the same knobs, and a modelled builder container that
was running goes on to its configured outcome and writes its result where it was told to.

The regression test of the chaos suite's sandbox-restart failure (seed 201): the running container
used to end with exit code 1 ("the sandbox restarted while this container ran") and Azurite came back
on a new port, so the result.json URL the container was given pointed nowhere. And seed 202 (VHD):
a VM deallocating when the sandbox stopped stayed "deallocating", so its disk was never exported.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from tests.fixtures.sandbox import FAST_SCALE, SandboxHandle, start_sandbox, stop_sandbox

LOC = "westeurope"
RUN_SECONDS = 4.0  # real seconds the modelled builder runs: long enough to restart the sandbox inside


class Restartable:
    """A persisted sandbox whose environment is in os.environ while it runs (the SDK reads it there)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.saved = dict(os.environ)
        self.handle = self._start()

    def _start(self) -> SandboxHandle:
        handle = start_sandbox("--state", str(self.state))
        os.environ.update(handle.env)
        return handle

    def restart(self) -> SandboxHandle:
        stop_sandbox(self.handle)  # asserts its ports are closed and Azurite is gone
        self.handle = self._start()
        return self.handle

    def stop(self) -> None:
        stop_sandbox(self.handle)
        os.environ.clear()
        os.environ.update(self.saved)


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Restartable]:
    sandbox = Restartable(tmp_path / "sandbox.json")
    try:
        yield sandbox
    finally:
        sandbox.stop()


def log_container_url(sandbox: SandboxHandle) -> str:
    """A container SAS URL in a fresh storage account, as the operator hands its builder."""
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update("rg", {"location": LOC})
    storage = sandbox.client(StorageManagementClient)
    account = storage.storage_accounts.begin_create(
        "rg", "kaiblogs", {"location": LOC, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
    ).result()
    key = storage.storage_accounts.list_keys("rg", "kaiblogs").keys_property[0].value
    endpoint = account.primary_endpoints.blob.rstrip("/")
    ContainerClient(
        endpoint, "logs", credential={"account_name": "kaiblogs", "account_key": key}
    ).create_container()
    sas = generate_container_sas(
        "kaiblogs", "logs", account_key=key, permission=ContainerSasPermissions(read=True, write=True,
        create=True, add=True, list=True), expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    return f"{endpoint}/logs?{sas}"


def builder_group(url: str) -> dict[str, Any]:
    env = [{"name": "KAIB_LOG_CONTAINER_URL", "secureValue": url}, {"name": "KAIB_BUILD_ID", "value": "b1"}]
    container = {
        "name": "builder",
        "properties": {
            "image": "kaib/builder",
            "environmentVariables": env,
            "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
        },
    }
    return {
        "location": LOC,
        "properties": {"osType": "Linux", "restartPolicy": "Never", "containers": [container]},
    }


def state_of(aci: Any, name: str) -> tuple[str, Any]:
    group = aci.container_groups.get("rg", name)
    return group.instance_view.state, group.containers[0].instance_view.current_state


def wait_for(aci: Any, name: str, states: set[str], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while (found := state_of(aci, name))[0] not in states:
        assert time.monotonic() < deadline, f"{name} still {found[0]}"
        time.sleep(0.05)
    return found[1]


def test_running_modelled_builder_survives_a_sandbox_restart(restartable: Restartable) -> None:
    sandbox = restartable.handle
    url = log_container_url(sandbox)
    sandbox.add_outcome("builder-*", exitCode=0, seconds=RUN_SECONDS / FAST_SCALE, logs="persisted outcome\n")
    sandbox.add_outcome("later-*", exitCode=0, seconds=0.1 / FAST_SCALE, logs="kept rule\n")
    aci = sandbox.client(ContainerInstanceManagementClient)
    aci.container_groups.begin_create_or_update("rg", "builder-1", builder_group(url)).result()
    running = wait_for(aci, "builder-1", {"Running"}, timeout=RUN_SECONDS)
    before = {"env": dict(sandbox.env), "azurite": sandbox.health()["azurite"]["port"]}

    sandbox = restartable.restart()
    assert sandbox.env["KAIB_ARM_ENDPOINT"] == before["env"]["KAIB_ARM_ENDPOINT"], "the ARM port is kept"
    assert sandbox.health()["azurite"]["port"] == before["azurite"], "Azurite's port is kept"
    aci = sandbox.client(ContainerInstanceManagementClient)
    done = wait_for(aci, "builder-1", {"Succeeded", "Failed"})
    logs = aci.containers.list_logs("rg", "builder-1", "builder").content
    assert done.exit_code == 0 and "persisted outcome" in logs, logs
    assert done.start_time == running.start_time, "the same run, resumed"
    # it wrote its result through the URL it was given before the restart
    result = json.loads(ContainerClient.from_container_url(url).download_blob("b1/result.json").readall())
    assert result["status"] == "Succeeded"
    # the outcome rules themselves were kept: a group made after the restart meets them too
    aci.container_groups.begin_create_or_update("rg", "later-1", builder_group(url)).result()
    wait_for(aci, "later-1", {"Succeeded", "Failed"})
    assert "kept rule" in aci.containers.list_logs("rg", "later-1", "builder").content


def test_container_group_whose_create_was_in_flight_runs_after_the_restart(restartable: Restartable) -> None:
    """Its create counts as done on restore (as every in-flight operation does), so it runs."""
    sandbox = restartable.handle
    url = log_container_url(sandbox)
    sandbox.set_latency(**{"Microsoft.ContainerInstance/containerGroups:put": 60 / FAST_SCALE})
    sandbox.add_outcome("builder-*", exitCode=3, seconds=0.2 / FAST_SCALE)
    aci = sandbox.client(ContainerInstanceManagementClient)
    aci.container_groups.begin_create_or_update("rg", "builder-1", builder_group(url))  # not waited for
    assert state_of(aci, "builder-1")[0] == "Pending"

    sandbox = restartable.restart()
    aci = sandbox.client(ContainerInstanceManagementClient)
    assert wait_for(aci, "builder-1", {"Succeeded", "Failed"}).exit_code == 3, "the kept outcome, not a crash"


def vm(sandbox: SandboxHandle) -> Any:
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update("rg", {"location": LOC})
    net = sandbox.client(NetworkManagementClient)
    vnet = {
        "location": LOC,
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.20.0.0/16"]},
            "subnets": [{"name": "s", "properties": {"addressPrefix": "10.20.1.0/24"}}],
        },
    }
    subnet = net.virtual_networks.begin_create_or_update("rg", "vnet", vnet).result().subnets[0].id
    ip = {"name": "ip", "properties": {"subnet": {"id": subnet}}}
    nic = net.network_interfaces.begin_create_or_update(
        "rg", "nic", {"location": LOC, "properties": {"ipConfigurations": [ip]}}
    ).result()
    key = {
        "path": "/home/packer/.ssh/authorized_keys",
        "keyData": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ9 t@k",
    }
    body = {
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
            },
            "osProfile": {
                "computerName": "vm",
                "adminUsername": "packer",
                "linuxConfiguration": {"disablePasswordAuthentication": True, "ssh": {"publicKeys": [key]}},
            },
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
        },
    }
    return (
        sandbox.client(ComputeManagementClient)
        .virtual_machines.begin_create_or_update("rg", "vm", body)
        .result()
    )


def test_vm_deallocating_when_the_sandbox_stopped_is_deallocated_after(restartable: Restartable) -> None:
    """Its operation counts as done on restore, so the VM is deallocated: its disk can be exported."""
    sandbox = restartable.handle
    disk = vm(sandbox).storage_profile.os_disk.name
    sandbox.set_latency(**{"Microsoft.Compute/virtualMachines:deallocate": 60 / FAST_SCALE})
    sandbox.client(ComputeManagementClient).virtual_machines.begin_deallocate("rg", "vm")  # not waited for

    sandbox = restartable.restart()
    compute = sandbox.client(ComputeManagementClient)
    statuses = [s.code for s in compute.virtual_machines.instance_view("rg", "vm").statuses or []]
    assert "PowerState/deallocated" in statuses, statuses
    access = {"access": "Read", "durationInSeconds": 600}
    assert compute.disks.begin_grant_access("rg", disk, access).result().access_sas
