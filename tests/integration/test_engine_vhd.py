"""VHD distribution end to end: the sandbox's disk export (grant access) with the unmodified SDKs, then
`kaib run` as a process building VHDs into the staging storage account and into a user's container.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.storage.blob import BlobClient, BlobServiceClient

from kaib.sandbox.diskexport import read_footer
from tests.fixtures.controlplane import Kube
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.test_engine import (
    Operator,
    apply,
    build,
    creates_per_resource,
    owned,
    template,
    wait_phase,
)

LOC = "westus"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ9sandbox test@kaib"
UBUNTU = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}


def _group(sandbox: SandboxHandle, prefix: str) -> str:
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(name, {"location": LOC})
    return name


def _vm(sandbox: SandboxHandle, group: str) -> Any:
    net = sandbox.client(NetworkManagementClient)
    vnet = {
        "location": LOC,
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.20.0.0/16"]},
            "subnets": [{"name": "s", "properties": {"addressPrefix": "10.20.1.0/24"}}],
        },
    }
    subnet_id = net.virtual_networks.begin_create_or_update(group, "vnet", vnet).result().subnets[0].id
    ip = {"name": "ip", "properties": {"subnet": {"id": subnet_id}}}
    nic = net.network_interfaces.begin_create_or_update(
        group, "nic", {"location": LOC, "properties": {"ipConfigurations": [ip]}}
    ).result()
    key = {"path": "/home/packer/.ssh/authorized_keys", "keyData": SSH_KEY}
    body = {
        "location": LOC,
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_B2s"},
            "storageProfile": {"imageReference": UBUNTU},
            "osProfile": {
                "computerName": "vm",
                "adminUsername": "packer",
                "linuxConfiguration": {"disablePasswordAuthentication": True, "ssh": {"publicKeys": [key]}},
            },
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
        },
    }
    compute = sandbox.client(ComputeManagementClient)
    return compute.virtual_machines.begin_create_or_update(group, "vm", body).result()


def _account(sandbox: SandboxHandle, group: str) -> tuple[str, str, str]:
    """A storage account: (name, blob endpoint, key)."""
    storage = sandbox.client(StorageManagementClient)
    name = f"user{uuid.uuid4().hex[:12]}"
    body = {"location": LOC, "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}
    storage.storage_accounts.begin_create(group, name, body).result()
    key = storage.storage_accounts.list_keys(group, name).as_dict()["keys"][0]["value"]
    endpoint = storage.storage_accounts.get_properties(group, name).primary_endpoints.blob
    return name, endpoint, key


def test_disk_export_serves_the_disk_bytes_and_follows_azure_rules(sandbox: SandboxHandle) -> None:
    group = _group(sandbox, "vhd-arm-")
    compute = sandbox.client(ComputeManagementClient)
    vm = _vm(sandbox, group)
    disk_name = vm.storage_profile.os_disk.name
    access = {"access": "Read", "durationInSeconds": 600}
    # Azure refuses to export the disk of a running VM, with this code and message.
    with pytest.raises(HttpResponseError) as refused:
        compute.disks.begin_grant_access(group, disk_name, access).result()
    assert refused.value.error is not None and refused.value.error.code == "Conflict"
    assert "currently attached to running VM" in str(refused.value)

    compute.virtual_machines.begin_deallocate(group, "vm").result()
    compute.virtual_machines.generalize(group, "vm")
    sas = compute.disks.begin_grant_access(group, disk_name, access).result().access_sas
    assert compute.disks.get(group, disk_name).disk_state == "ActiveSAS"
    again = compute.disks.begin_grant_access(group, disk_name, access).result().access_sas
    exported = BlobClient.from_blob_url(sas).download_blob().readall()
    assert BlobClient.from_blob_url(again).download_blob().readall() == exported  # one export
    footer = read_footer(exported)
    disk = compute.disks.get(group, disk_name)
    assert footer.cookie == b"conectix" and footer.checksum_ok and footer.disk_type == 2
    assert footer.current_size == len(exported) - 512 and footer.current_size % (1024 * 1024) == 0
    assert str(uuid.UUID(bytes=footer.unique_id)) == disk.unique_id
    described = json.loads(exported[: footer.current_size].rstrip(b"\0"))
    assert described["disk"].lower() == disk.id.lower() and described["generalized"] is True

    # A server-side copy from the SAS into another account really copies the bytes.
    name, endpoint, key = _account(sandbox, group)
    service = BlobServiceClient(endpoint, credential={"account_name": name, "account_key": key})
    service.create_container("vhds")
    target = service.get_blob_client("vhds", "copy.vhd")
    target.start_copy_from_url(sas)
    assert target.get_blob_properties().copy.status == "success"
    assert target.download_blob().readall() == exported

    # An exported disk cannot be deleted (nor its VM, which deletes it): revoke first.
    with pytest.raises(ResourceExistsError) as busy:
        compute.disks.begin_delete(group, disk_name).result()
    assert "ActiveSAS" in str(busy.value)
    compute.disks.begin_revoke_access(group, disk_name).result()
    assert compute.disks.get(group, disk_name).disk_state != "ActiveSAS"
    with pytest.raises(HttpResponseError):  # the SAS no longer serves anything
        BlobClient.from_blob_url(sas).download_blob().readall()
    compute.disks.begin_revoke_access(group, disk_name).result()  # again: no error
    compute.virtual_machines.begin_delete(group, "vm").result()
    sandbox.client(ResourceManagementClient).resource_groups.begin_delete(group).result()


# -- the engine: kaib run builds VHDs -------------------------------------------------------------


@pytest.fixture(scope="module")
def vhd_operator(
    kube: Kube, sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(kube, sandbox, tmp_path_factory.mktemp("vhd-operator") / "operator.log")
    op.start()
    try:
        yield op
    finally:
        op.stop()


def _vhd_template(sandbox: SandboxHandle, name: str, **target: Any) -> dict[str, Any]:
    tmpl = template(name, sandbox, f"/subscriptions/{sandbox.subscription_id}/resourceGroups/unused")
    tmpl["spec"]["distribute"] = [{"type": "VHD", "runOutputName": "vhd", **target}]
    return tmpl


def _staging_account(sandbox: SandboxHandle, status: dict[str, Any]) -> tuple[str, str, str]:
    storage = sandbox.client(StorageManagementClient)
    group = status["stagingResourceGroup"].rsplit("/", 1)[-1]
    account = status["logs"]["storageAccount"]
    key = storage.storage_accounts.list_keys(group, account).as_dict()["keys"][0]["value"]
    return account, storage.storage_accounts.get_properties(group, account).primary_endpoints.blob, key


def _assert_disk_vhd(data: bytes, status: dict[str, Any]) -> None:
    """The blob is a fixed VHD of the build VM's OS disk, exported after generalization."""
    footer = read_footer(data)
    assert footer.cookie == b"conectix" and footer.checksum_ok and footer.disk_type == 2
    assert footer.current_size == len(data) - 512
    described = json.loads(data[: footer.current_size].rstrip(b"\0"))
    disk = (
        f"{status['stagingResourceGroup']}/providers/Microsoft.Compute/disks/kaib-{status['buildId']}-osdisk"
    )
    assert described["disk"].lower() == disk.lower()
    assert described["generalized"] is True
    assert described["source"]["version"] == status["exactSourceVersion"]


def _assert_clean(sandbox: SandboxHandle, status: dict[str, Any]) -> None:
    build_id = status["buildId"]
    assert owned(sandbox, build_id) == []
    staging = status["stagingResourceGroup"].lower()
    left = sorted(r["type"] for r in sandbox.inventory() if r["id"].lower().startswith(staging))
    assert left in (
        ["Microsoft.Resources/resourceGroups", "Microsoft.Storage/storageAccounts"],
        ["Microsoft.Storage/storageAccounts"],
    ), left
    created = creates_per_resource(sandbox, build_id)
    assert created and max(created.values()) == 1, created
    posts = [
        r for r in sandbox.requests(limit=20000) if r.get("method") == "POST" and build_id in str(r["path"])
    ]
    grants = [r for r in posts if "begingetaccess" in str(r["path"]).lower() and r.get("status") == 202]
    revokes = [r for r in posts if "endgetaccess" in str(r["path"]).lower() and r.get("status") == 202]
    assert len(grants) == 1 and len(revokes) >= 1, (grants, revokes)


def test_vhd_into_the_staging_storage_account(
    kube: Kube, sandbox: SandboxHandle, vhd_operator: Operator
) -> None:
    ns = kube.namespace(f"vhd-{uuid.uuid4().hex[:6]}")
    tmpl = _vhd_template(sandbox, "vhd", artifactTags={"team": "images", "build-kind": "vhd"})
    apply(kube, ns, tmpl, build("vhd-1", "vhd"))
    done = wait_phase(kube, vhd_operator, ns, "vhd-1", {"Succeeded", "Failed", "Canceled"})
    status = done["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    (output,) = status["runOutputs"]
    account, endpoint, key = _staging_account(sandbox, status)
    expected = f"{endpoint.rstrip('/')}/vhds/{status['buildId']}/vhd.vhd"
    assert output == {"runOutputName": "vhd", "artifactUri": expected, "provisioningState": "Succeeded"}
    assert expected in status["message"]
    blob = BlobClient.from_blob_url(expected, credential={"account_name": account, "account_key": key})
    props = blob.get_blob_properties()
    assert props.metadata["team"] == "images" and props.metadata["build_kind"] == "vhd"
    assert props.metadata["kaibbuildid"] == status["buildId"]
    _assert_disk_vhd(blob.download_blob().readall(), status)
    service = BlobServiceClient(endpoint, credential={"account_name": account, "account_key": key})
    vhds = [b.name for b in service.get_container_client("vhds").list_blobs()]
    assert vhds == [f"{status['buildId']}/vhd.vhd"], vhds  # one copy, nothing else
    _assert_clean(sandbox, status)


def test_vhd_into_a_users_container(kube: Kube, sandbox: SandboxHandle, vhd_operator: Operator) -> None:
    group = _group(sandbox, "vhd-user-")
    account, endpoint, key = _account(sandbox, group)
    service = BlobServiceClient(endpoint, credential={"account_name": account, "account_key": key})
    service.create_container("images")
    uri = f"{endpoint.rstrip('/')}/images/golden/ubuntu.vhd"
    ns = kube.namespace(f"vhd-uri-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, _vhd_template(sandbox, "vhd-uri", uri=uri), build("vhd-uri-1", "vhd-uri"))
    done = wait_phase(kube, vhd_operator, ns, "vhd-uri-1", {"Succeeded", "Failed", "Canceled"})
    status = done["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert status["runOutputs"] == [
        {"runOutputName": "vhd", "artifactUri": uri, "provisioningState": "Succeeded"}
    ]
    _assert_disk_vhd(service.get_blob_client("images", "golden/ubuntu.vhd").download_blob().readall(), status)
    staging_account, staging_endpoint, staging_key = _staging_account(sandbox, status)
    staging = BlobServiceClient(
        staging_endpoint, credential={"account_name": staging_account, "account_key": staging_key}
    )
    assert not staging.get_container_client("vhds").exists()  # nothing went to the staging account
    _assert_clean(sandbox, status)
