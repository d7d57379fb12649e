"""`kaib sandbox` as users run it: --config, the export lines on stdout, SIGINT stops everything;
and the VM power and container-group actions through the SDK."""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from tests.fixtures.sandbox import SandboxHandle, process_alive, start_sandbox

LOC = "westeurope"
CONFIG = """
latency: {scale: 0.001, seconds: {"Microsoft.Network/virtualNetworks:put": 100}}
quotas: {compute: {cores: 4}}
providers: {Microsoft.ContainerInstance: NotRegistered}
policies: [{type: "Microsoft.Network/publicIPAddresses", message: "no public IPs"}]
outcomes: [{name: "*", exitCode: 7, logs: "configured\\n"}]
ownerTagPrefix: team
"""


def test_config_file_export_lines_and_sigint(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.yaml"
    config.write_text(CONFIG)
    handle = start_sandbox("--config", str(config))
    try:
        described = handle.call("GET", "config")
        assert described["quotas"]["compute"]["cores"] == 4
        assert described["providers"]["Microsoft.ContainerInstance"] == "NotRegistered"
        assert described["policies"][0]["type"] == "Microsoft.Network/publicIPAddresses"
        assert described["outcomes"][0]["exit_code"] == 7 and described["ownerTagPrefix"] == "team"
        assert handle.call("GET", "latency")["seconds"]["microsoft.network/virtualnetworks:put"] == 100
        health = handle.health()
    finally:
        handle.process.send_signal(signal.SIGINT)
        handle.process.wait(timeout=30)
    printed = (handle.workdir / "sandbox.log").read_text()
    for name in ("KAIB_ARM_ENDPOINT", "KAIB_SANDBOX_ADMIN", "AZURE_SUBSCRIPTION_ID", "AZURE_TENANT_ID",
                 "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "SSL_CERT_FILE",
                 "REQUESTS_CA_BUNDLE", "NO_PROXY"):  # fmt: skip
        assert f"export {name}=" in printed
    assert "export AZURE_TOKEN_CREDENTIALS=WorkloadIdentityCredential" in printed
    assert handle.process.returncode == 0
    assert not process_alive(health["azurite"]["pid"])
    assert not Path(handle.env["SSL_CERT_FILE"]).exists(), "the temporary CA directory is removed"
    shutil.rmtree(handle.workdir, ignore_errors=True)


@pytest.fixture
def group(sandbox: SandboxHandle) -> str:
    name = f"rg-{uuid.uuid4().hex[:8]}"
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(name, {"location": LOC})
    return name


def network(sandbox: SandboxHandle, group: str) -> Any:
    net = sandbox.client(NetworkManagementClient)
    return net, net.virtual_networks.begin_create_or_update(
        group,
        "vnet",
        {
            "location": LOC,
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.5.0.0/16"]},
                "subnets": [
                    {
                        "name": "aci",
                        "properties": {
                            "addressPrefix": "10.5.1.0/24",
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
                    {"name": "vms", "properties": {"addressPrefix": "10.5.2.0/24"}},
                ],
            },
        },
    ).result()


def test_vm_power_actions_tags_and_quota(sandbox: SandboxHandle, group: str) -> None:
    net, vnet = network(sandbox, group)
    nic = net.network_interfaces.begin_create_or_update(
        group,
        "nic",
        {
            "location": LOC,
            "properties": {
                "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": vnet.subnets[1].id}}}]
            },
        },
    ).result()
    tagged = net.network_interfaces.update_tags(group, "nic", {"tags": {"kaib.dev/build": "b1"}})
    assert (
        tagged.tags == {"kaib.dev/build": "b1"}
        and tagged.ip_configurations[0].private_ip_address == "10.5.2.4"
    )
    compute = sandbox.client(ComputeManagementClient)
    body = {
        "location": LOC,
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D4s_v3"},
            "storageProfile": {
                "imageReference": {
                    "publisher": "Canonical",
                    "offer": "ubuntu-24_04-lts",
                    "sku": "server",
                    "version": "latest",
                }
            },
            "osProfile": {"computerName": "vm", "adminUsername": "u", "adminPassword": "Pa55word!-x"},
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
        },
    }
    compute.virtual_machines.begin_create_or_update(group, "vm", body).result()

    def power() -> str:
        codes = [s.code for s in compute.virtual_machines.instance_view(group, "vm").statuses]
        return next(c for c in codes if c.startswith("PowerState/"))

    assert power() == "PowerState/running"
    compute.virtual_machines.begin_power_off(group, "vm").result()
    assert power() == "PowerState/stopped"
    compute.virtual_machines.begin_start(group, "vm").result()
    assert power() == "PowerState/running"
    compute.virtual_machines.begin_restart(group, "vm").result()
    assert power() == "PowerState/running"
    sandbox.set_quota("compute", cores=5)
    try:
        nic2 = net.network_interfaces.begin_create_or_update(
            group,
            "nic2",
            {
                "location": LOC,
                "properties": {
                    "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": vnet.subnets[1].id}}}]
                },
            },
        ).result()
        body["properties"]["networkProfile"] = {"networkInterfaces": [{"id": nic2.id}]}
        with pytest.raises(HttpResponseError) as quota:
            compute.virtual_machines.begin_create_or_update(group, "vm2", body).result()
        assert quota.value.error is not None and quota.value.error.code == "OperationNotAllowed"
        assert "Current Limit: 5" in str(quota.value.error.message)
        disks = [d.name for d in compute.disks.list_by_resource_group(group)]
        assert len(disks) == 1 and disks[0].startswith("vm_"), "a refused VM leaves no OS disk behind"
    finally:
        sandbox.set_quota("compute", cores=100)
    rm = sandbox.client(ResourceManagementClient)
    assert rm.resources.check_existence_by_id(nic.id, api_version="2024-05-01")


def test_container_group_stop_start_and_logs_tail(sandbox: SandboxHandle, group: str) -> None:
    _, vnet = network(sandbox, group)
    aci = sandbox.client(ContainerInstanceManagementClient)
    sandbox.add_outcome("cg-tail", exitCode=0, logs="one\ntwo\nthree\n", seconds=0)
    made = aci.container_groups.begin_create_or_update(
        group,
        "cg-tail",
        {
            "location": LOC,
            "properties": {
                "osType": "Linux",
                "restartPolicy": "Never",
                "subnetIds": [{"id": vnet.subnets[0].id}],
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
    assert made.provisioning_state == "Succeeded"
    deadline = time.monotonic() + 20
    while aci.container_groups.get(group, "cg-tail").instance_view.state != "Succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert aci.containers.list_logs(group, "cg-tail", "c", tail=2).content == "two\nthree\n"
    aci.container_groups.stop(group, "cg-tail")
    assert aci.container_groups.get(group, "cg-tail").instance_view.state == "Stopped"
    aci.container_groups.begin_start(group, "cg-tail").result()
    deadline = time.monotonic() + 20
    while aci.container_groups.get(group, "cg-tail").instance_view.state != "Succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert os.environ["KAIB_ARM_ENDPOINT"] == sandbox.arm_endpoint
