"""VHD distribution end to end: the sandbox's disk export (grant access) with the unmodified SDKs, then
`kaib run` as a process building VHDs into the staging storage account and into a user's container,
refusing a missing destination in preflight, and the orphan sweeper removing a build's exported disk.
"""

from __future__ import annotations

import io
import json
import tarfile
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

from kaib.devenv.manifests import LOCATION, image_build, image_template
from kaib.sandbox.diskexport import fixed_vhd, read_footer
from tests.fixtures.builds import (
    apply,
    assert_only_staging_left,
    condition,
    get,
    owned,
    wait_phase,
)
from tests.fixtures.controlplane import Kube
from tests.fixtures.operator import Operator, StartOperator
from tests.fixtures.runtime import RuntimeKit
from tests.fixtures.sandbox import SandboxHandle

LOC = LOCATION
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


def vhd_template(sandbox: SandboxHandle, name: str, **target: Any) -> dict[str, Any]:
    """The smallest template, its one target a VHD (so no images group: the default target is replaced)."""
    distribute = [{"type": "VHD", "runOutputName": "vhd", **target}]
    return image_template(name, sandbox, "", distribute=distribute)


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
    assert_only_staging_left(sandbox, status)
    posts = [
        r for r in sandbox.requests(limit=20000) if r.get("method") == "POST" and build_id in str(r["path"])
    ]
    grants = [r for r in posts if "begingetaccess" in str(r["path"]).lower() and r.get("status") == 202]
    revokes = [r for r in posts if "endgetaccess" in str(r["path"]).lower() and r.get("status") == 202]
    assert len(grants) == 1 and len(revokes) >= 1, (grants, revokes)


def test_vhd_into_the_staging_storage_account(kube: Kube, sandbox: SandboxHandle, operator: Operator) -> None:
    ns = kube.namespace(f"vhd-{uuid.uuid4().hex[:6]}")
    tmpl = vhd_template(sandbox, "vhd", artifactTags={"team": "images", "build-kind": "vhd"})
    apply(kube, ns, tmpl, image_build("vhd-1", "vhd"))
    done = wait_phase(kube, operator, ns, "vhd-1")
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


def test_vhd_into_a_users_container(kube: Kube, sandbox: SandboxHandle, operator: Operator) -> None:
    group = _group(sandbox, "vhd-user-")
    account, endpoint, key = _account(sandbox, group)
    service = BlobServiceClient(endpoint, credential={"account_name": account, "account_key": key})
    service.create_container("images")
    uri = f"{endpoint.rstrip('/')}/images/golden/ubuntu.vhd"
    ns = kube.namespace(f"vhd-uri-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, vhd_template(sandbox, "vhd-uri", uri=uri), image_build("vhd-uri-1", "vhd-uri"))
    done = wait_phase(kube, operator, ns, "vhd-uri-1")
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


@pytest.fixture()
def slow_grant(sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    """Disk grants take ~3 real seconds: long enough to kill or cancel the build meanwhile."""
    key = "Microsoft.Compute/disks:begingetaccess"
    sandbox.set_latency(**{key: 1500})
    yield sandbox
    sandbox.set_latency(**{key: 5})


def _granting(kube: Kube, op: Operator, namespace: str, name: str) -> dict[str, Any]:
    """Wait until the build's status holds the saved grant operation (written, so a kill loses nothing)."""

    def check() -> dict[str, Any] | None:
        status = get(kube, namespace, "imagebuild", name).get("status") or {}
        ops = status.get("operations") or []
        return status if any(o.get("action") == "beginGetAccess" for o in ops) else None

    result: dict[str, Any] = op.wait_for(f"{name} granting disk access", check)
    return result


def test_operator_killed_while_the_disk_is_granted_resumes_the_same_grant(
    kube: Kube, slow_grant: SandboxHandle, operator: Operator
) -> None:
    sandbox = slow_grant
    ns = kube.namespace(f"vhd-kill-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, vhd_template(sandbox, "vhd-kill"), image_build("vhd-kill-1", "vhd-kill"))
    _granting(kube, operator, ns, "vhd-kill-1")
    operator.kill()
    operator.start()
    status = wait_phase(kube, operator, ns, "vhd-kill-1")["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    account, endpoint, key = _staging_account(sandbox, status)
    service = BlobServiceClient(endpoint, credential={"account_name": account, "account_key": key})
    _assert_disk_vhd(
        service.get_blob_client("vhds", f"{status['buildId']}/vhd.vhd").download_blob().readall(), status
    )
    _assert_clean(sandbox, status)  # one grant: the restarted operator resumed the saved one


def test_cancel_while_the_disk_is_granted_revokes_and_deletes_everything(
    kube: Kube, slow_grant: SandboxHandle, operator: Operator
) -> None:
    sandbox = slow_grant
    ns = kube.namespace(f"vhd-cancel-{uuid.uuid4().hex[:6]}")
    apply(kube, ns, vhd_template(sandbox, "vhd-cancel"), image_build("vhd-cancel-1", "vhd-cancel"))
    _granting(kube, operator, ns, "vhd-cancel-1")
    kube.kubectl(
        "patch", "-n", ns, "imagebuild", "vhd-cancel-1", "--type=merge", "-p", '{"spec": {"cancel": true}}'
    )
    status = wait_phase(kube, operator, ns, "vhd-cancel-1")["status"]
    assert status["phase"] == "Canceled", json.dumps(status, indent=1)
    assert owned(sandbox, status["buildId"]) == []  # the exported disk was revoked, then deleted
    staging = status["stagingResourceGroup"].lower()
    left = sorted(r["type"] for r in sandbox.inventory() if r["id"].lower().startswith(staging))
    assert "Microsoft.Compute/disks" not in left, left
    # The grant in flight finished before the disk could go; cleanup revoked it.
    posts = [
        r
        for r in sandbox.requests(limit=20000)
        if r.get("method") == "POST" and status["buildId"] in r["path"]
    ]
    assert any("endgetaccess" in r["path"].lower() and r["status"] == 202 for r in posts), posts


def _writes(sandbox: SandboxHandle, build_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in sandbox.requests(limit=20000)
        if r.get("method") in ("PUT", "POST", "PATCH", "DELETE") and build_id in str(r.get("path"))
    ]


@pytest.mark.parametrize("missing", ["container", "account"])
def test_a_missing_destination_fails_in_preflight_and_creates_nothing(
    kube: Kube, sandbox: SandboxHandle, operator: Operator, missing: str
) -> None:
    service = None
    if missing == "container":
        group = _group(sandbox, "vhd-nocontainer-")
        account, endpoint, key = _account(sandbox, group)
        service = BlobServiceClient(endpoint, credential={"account_name": account, "account_key": key})
        uri = f"{endpoint.rstrip('/')}/missing/ubuntu.vhd"
        expected = f"container missing does not exist in storage account {account}"
    else:  # never contacted: the account is looked up in the subscription first
        account = f"nosuch{uuid.uuid4().hex[:12]}"
        uri = f"https://{account}.blob.core.windows.net/images/ubuntu.vhd"
        expected = f"no storage account {account} in subscription {sandbox.subscription_id}"
    ns = kube.namespace(f"vhd-missing-{uuid.uuid4().hex[:6]}")
    tmpl = vhd_template(sandbox, "vhd-missing", uri=uri)
    tmpl["spec"]["distribute"].insert(0, {"type": "VHD", "runOutputName": "staged"})  # no uri: not checked
    apply(kube, ns, tmpl, image_build("vhd-missing-1", "vhd-missing"))
    final = wait_phase(kube, operator, ns, "vhd-missing-1")
    status = final["status"]
    assert status["phase"] == "Failed", json.dumps(status, indent=1)
    message = status["message"]
    assert "distribute[1].uri" in message and expected in message, message
    preflight = condition(final, "PreflightPassed")
    assert preflight["status"] == "False" and preflight["reason"] == "VhdDestinationNotFound", preflight
    assert condition(final, "Stalled")["status"] == "True"
    assert not status.get("stagingResourceGroup") and not status.get("runOutputs")
    assert _writes(sandbox, status["buildId"]) == []  # failed before anything was created
    if service is not None:
        assert [c.name for c in service.list_containers()] == []  # read only: the container was not made


# A short grace period and frequent sweeps, as tests/integration/test_orphans.py configures them.
SWEEP_SOON = {"KAIB_ORPHAN_GRACE_SECONDS": "2", "KAIB_ORPHAN_INTERVAL_SECONDS": "1"}


def test_the_sweeper_revokes_and_deletes_an_orphaned_exported_disk(
    kube: Kube, slow_grant: SandboxHandle, operator: Operator, start_operator: StartOperator
) -> None:
    """The operator dies during the grant; the build goes while it is down (finalizer removed by hand).
    The disk ends exported, which refuses every delete (of the disk and of its VM) until revoked."""
    sandbox = slow_grant
    ns = kube.namespace(f"vhd-orphan-{uuid.uuid4().hex[:6]}")
    operator.stop()  # it watches every namespace: this build is for the one the test starts
    try:
        op = start_operator(namespace=ns, env=SWEEP_SOON)
        apply(kube, ns, vhd_template(sandbox, "vhd-orphan"), image_build("vhd-orphan-1", "vhd-orphan"))
        status = _granting(kube, op, ns, "vhd-orphan-1")
        op.kill()
        build_id = status["buildId"]
        disk = f"{status['stagingResourceGroup']}/providers/Microsoft.Compute/disks/kaib-{build_id}-osdisk"
        kube.kubectl(
            "patch",
            "-n",
            ns,
            "imagebuild",
            "vhd-orphan-1",
            "--type=merge",
            "-p",
            '{"metadata": {"finalizers": null}}',
        )
        kube.kubectl("delete", "-n", ns, "imagebuild", "vhd-orphan-1", "--wait=true", "--timeout=30s")
        staging = status["stagingResourceGroup"].lower()

        def left() -> list[str]:
            return [r["id"].lower() for r in sandbox.inventory() if build_id in r["id"].lower()]

        assert disk.lower() in left()
        op.start()
        op.wait_for("the orphaned build's resources to be swept", lambda: not left(), timeout=120)
    finally:
        operator.start()
    log = op.log().lower()
    assert f"orphan sweeper: revoking the access to the exported disk {disk.lower()}" in log
    assert f"orphan sweeper: deleted {disk.lower()}," in log
    revokes = [r for r in _writes(sandbox, build_id) if "endgetaccess" in str(r["path"]).lower()]
    assert revokes and all(r["status"] == 202 for r in revokes), revokes
    # The template is alive: its staging group and storage account stay.
    kept = sorted(r["type"] for r in sandbox.inventory() if r["id"].lower().startswith(staging))
    assert "Microsoft.Storage/storageAccounts" in kept and "Microsoft.Compute/disks" not in kept, kept


def test_the_real_runtime_exports_the_vms_disk_changes(sandbox_runtime: RuntimeKit) -> None:
    """With the real runtime, an exported disk's data is a tar of the VM's disk changes."""
    from kaib.sandbox.runtime.hooks import RuntimeHooks, _Vm

    net = sandbox_runtime.network()
    key = sandbox_runtime.ssh_key()
    vm = sandbox_runtime.vm(net, "vm", "10.60.1.4", key)
    client = sandbox_runtime.client(net, "aci", "10.60.2.4")
    wrote = sandbox_runtime.ssh(client, vm.ip, key, "echo built-by-kaib | sudo tee /etc/kaib-vhd-marker")
    assert wrote.returncode == 0, wrote.stderr
    hooks = RuntimeHooks()
    vm_id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm"
    hooks.vms[vm_id.lower()] = _Vm(vm, net, "nic")
    assert hooks._disk_tar(vm_id) is None  # a running VM's disk is not exported
    vm.stop()
    data = hooks._disk_tar(vm_id)
    assert data is not None
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("./etc/kaib-vhd-marker")
        assert member is not None and member.read() == b"built-by-kaib\n"
    image = fixed_vhd(data, b"\1" * 16)
    assert read_footer(image).checksum_ok and image.startswith(data)


def test_a_real_build_exports_the_customized_disk(
    kube: Kube,
    real_sandbox: SandboxHandle,
    operator: Operator,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Real Packer customizes a real sandbox VM; the VHD's data is a tar of that VM's disk changes."""
    ns = kube.namespace(f"vhd-real-{uuid.uuid4().hex[:6]}")
    operator.stop()  # it watches every namespace, against the other sandbox: it must not take this build
    op = Operator(kube, real_sandbox, tmp_path_factory.mktemp("vhd-real") / "operator.log", namespace=ns)
    op.start()
    try:
        tmpl = vhd_template(real_sandbox, "vhd-real")
        tmpl["spec"]["customize"] = [
            {"type": "Shell", "name": "mark", "inline": ["echo built-by-kaib | sudo tee /etc/kaib-built"]}
        ]
        apply(kube, ns, tmpl, image_build("vhd-real-1", "vhd-real"))
        status = wait_phase(kube, op, ns, "vhd-real-1")["status"]
    finally:
        op.stop()
        operator.start()
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    account, _, key = _staging_account(real_sandbox, status)
    blob = BlobClient.from_blob_url(
        status["runOutputs"][0]["artifactUri"], credential={"account_name": account, "account_key": key}
    )
    data = blob.download_blob().readall()
    footer = read_footer(data)
    assert footer.cookie == b"conectix" and footer.checksum_ok
    with tarfile.open(fileobj=io.BytesIO(data[: footer.current_size])) as tar:
        marker = tar.extractfile("./etc/kaib-built")
        assert marker is not None and marker.read() == b"built-by-kaib\n"
    assert owned(real_sandbox, status["buildId"]) == []
