"""The ARM emulator with RuntimeHooks, driven through the unmodified SDKs only: a VNet with subnets
and NSGs, a VM from an Ubuntu platform image, a container group running the builder agent that
customizes the VM over SSH through the sandbox network, NSG changes that really block, capture to a
managed image, and a second VM from that image that sees the first build's file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import Image, SubResource
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from kaib.azure import network
from kaib.azure import spec as t
from kaib.azure.compute import Access
from kaib.azure.context import BuildContext
from kaib.azure.naming import BuildNames, Owner, build_id
from kaib.azure.planner import PlanFacts, plan
from kaib.azure.spec import ResourceSpec
from kaib.packer import ConnectionFacts, RenderOptions, render_build
from kaib.sandbox.app import Options, Sandbox
from kaib.sandbox.runtime import Runtime, missing
from kaib.sandbox.runtime.hooks import RuntimeHooks
from kaib.sandbox.runtime.netns import read_banner
from kaib.sandbox.runtime.sweep import list_namespaces
from tests.fixtures.runtime import RuntimeKit, SshKey

T = TypeVar("T")
RG, LOCATION = "rg-hooks", "westeurope"
ADMIN = "azureuser"
API_VERSIONS = {
    "Microsoft.Network": "2024-05-01",
    "Microsoft.Compute": "2024-07-01",
    "Microsoft.ContainerInstance": "2023-05-01",
}


@dataclass
class Arm:
    sandbox: Sandbox
    hooks: RuntimeHooks
    network: NetworkManagementClient
    compute: ComputeManagementClient
    aci: ContainerInstanceManagementClient
    client_args: dict[str, Any]
    call: Callable[[Coroutine[Any, Any, Any]], Any]


def _nothing_left(runtime: Runtime) -> None:
    """No namespace, mount, process or state of this runtime remains."""
    assert not runtime.state_dir.exists()
    assert list_namespaces(runtime.prefix) == []
    assert runtime.prefix not in Path("/proc/self/mountinfo").read_text()
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(runtime.state_dir) not in processes


@pytest.fixture(scope="module")
def arm_sandbox() -> Iterator[Arm]:
    """One sandbox (and its Azurite) for the module, on an event loop of its own thread."""
    if missing():
        pytest.skip("sandbox runtime unavailable: missing " + "; ".join(missing()))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(120)

    hooks = RuntimeHooks()
    sandbox = Sandbox(Options(hooks=hooks, latency_scale=0.002))
    patch = pytest.MonkeyPatch()
    try:
        call(sandbox.start())
        for name, value in sandbox.env.items():
            patch.setenv(name, value)  # DefaultAzureCredential reads them from the environment
        args: dict[str, Any] = {
            "subscription_id": sandbox.subscription_id,
            "base_url": sandbox.env["KAIB_ARM_ENDPOINT"],
            "credential_scopes": ["https://management.azure.com/.default"],
            "polling_interval": 0.05,
        }
        credential = DefaultAzureCredential()
        yield Arm(
            sandbox,
            hooks,
            NetworkManagementClient(credential, **args),
            ComputeManagementClient(credential, **args),
            ContainerInstanceManagementClient(credential, **args),
            args,
            call,
        )
    finally:
        runtime = hooks._runtime
        call(sandbox.stop())  # closes the hooks: a full sweep
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        patch.undo()
    if runtime is not None:
        _nothing_left(runtime)


@pytest.fixture
def arm(arm_sandbox: Arm) -> Iterator[Arm]:
    """The module's sandbox, reset after each test: reset removes everything the runtime made."""
    runtime = arm_sandbox.hooks.runtime
    ResourceManagementClient(
        DefaultAzureCredential(), **arm_sandbox.client_args
    ).resource_groups.create_or_update(RG, {"location": LOCATION})
    try:
        yield arm_sandbox
    finally:
        arm_sandbox.call(arm_sandbox.sandbox.reset())
    _nothing_left(runtime)


def _rule(name: str, priority: int, access: str, source: str = "*", port: str = "*") -> dict[str, Any]:
    """A security rule in the REST shape (the SDKs send dicts as they are)."""
    return {
        "name": name,
        "properties": {
            "priority": priority,
            "direction": "Inbound",
            "access": access,
            "protocol": "Tcp" if port != "*" else "*",
            "sourceAddressPrefix": source,
            "sourcePortRange": "*",
            "destinationAddressPrefix": "*",
            "destinationPortRange": port,
        },
    }


def _network(arm: Arm) -> tuple[str, str, str]:
    """NSG (ACI -> build on 22, deny the rest), VNet, subnets, NIC: (build subnet, aci subnet, nic) ids."""
    nsg = arm.network.network_security_groups.begin_create_or_update(
        RG,
        "build-nsg",
        {
            "location": LOCATION,
            "properties": {
                "securityRules": [
                    _rule("AllowAciSsh", 100, "Allow", "10.60.2.0/24", "22"),
                    _rule("DenyAll", 4096, "Deny"),
                ]
            },
        },
    ).result()
    vnet = arm.network.virtual_networks.begin_create_or_update(
        RG,
        "vnet",
        {
            "location": LOCATION,
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.60.0.0/16"]},
                "subnets": [
                    {
                        "name": "build",
                        "properties": {
                            "addressPrefix": "10.60.1.0/24",
                            "networkSecurityGroup": {"id": nsg.id},
                        },
                    },
                    {
                        "name": "aci",
                        "properties": {
                            "addressPrefix": "10.60.2.0/24",
                            "delegations": [
                                {
                                    "name": "aci",
                                    "properties": {
                                        "serviceName": "Microsoft.ContainerInstance/containerGroups"
                                    },
                                }
                            ],
                        },
                    },
                ],
            },
        },
    ).result()
    build, aci = (next(s.id for s in vnet.subnets if s.name == n) for n in ("build", "aci"))
    nic = arm.network.network_interfaces.begin_create_or_update(RG, "vm1-nic", _nic_body(build)).result()
    return build, aci, nic.id


def _nic_body(subnet_id: str) -> dict[str, Any]:
    return {
        "location": LOCATION,
        "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet_id}}}]},
    }


def _vm(arm: Arm, name: str, nic_id: str, key: SshKey, image: dict[str, str]) -> Any:
    return arm.compute.virtual_machines.begin_create_or_update(
        RG,
        name,
        {
            "location": LOCATION,
            "properties": {
                "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
                "storageProfile": {"imageReference": image, "osDisk": {"createOption": "FromImage"}},
                "osProfile": {
                    "computerName": name,
                    "adminUsername": ADMIN,
                    "linuxConfiguration": {
                        "disablePasswordAuthentication": True,
                        "ssh": {
                            "publicKeys": [
                                {"path": f"/home/{ADMIN}/.ssh/authorized_keys", "keyData": key.public}
                            ]
                        },
                    },
                },
                "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": True}}]},
            },
        },
    ).result()


def _run_builder(
    arm: Arm,
    aci_subnet: str,
    vm_ip: str,
    key: SshKey,
    spec: dict[str, Any],
    *,
    build: str = "b1",
    image: str = "kaib-builder:latest",
    ssh_timeout: str = "15s",
    port: int | None = None,
    group: str = RG,
) -> tuple[int, str]:
    """Run a container group (named after the build) through the SDK; its exit code and logs."""
    facts = ConnectionFacts(os_type="Linux", host=vm_ip, username=ADMIN, build_id=build, port=port)
    options = RenderOptions(tolerate_missing_waagent=True, communicator_timeout=ssh_timeout)
    plan = render_build(spec, facts, options)
    assert arm.sandbox.azurite is not None
    env = [
        {"name": "KAIB_BUILD_ID", "value": build},
        {"name": "KAIB_PLAN", "value": json.dumps(plan.to_plan())},
        {"name": "KAIB_LOG_FLUSH_SECONDS", "value": "0.3"},
        {"name": "KAIB_SSH_PRIVATE_KEY", "secureValue": key.private.read_text()},
        {"name": "KAIB_STORAGE_CONNECTION_STRING", "secureValue": arm.sandbox.azurite.connection_string},
    ]
    arm.aci.container_groups.begin_create_or_update(
        group,
        build,
        {
            "location": LOCATION,
            "properties": {
                "osType": "Linux",
                "restartPolicy": "Never",
                "subnetIds": [{"id": aci_subnet}],
                "ipAddress": {"type": "Private", "ports": [{"port": 80}]},
                "containers": [
                    {
                        "name": "packer",
                        "properties": {
                            "image": image,
                            "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                            "environmentVariables": env,
                        },
                    }
                ],
            },
        },
    ).result()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = arm.aci.container_groups.get(group, build).containers[0].instance_view.current_state
        if state.state == "Terminated":
            logs = arm.aci.containers.list_logs(group, build, "packer").content or ""
            return int(state.exit_code), logs
        time.sleep(0.2)
    raise AssertionError("the builder container did not terminate")


def test_build_through_the_sdks_for_real(arm: Arm, sandbox_runtime: RuntimeKit) -> None:
    key = sandbox_runtime.ssh_key()
    build_subnet, aci_subnet, nic_id = _network(arm)
    ubuntu = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
    _vm(arm, "vm1", nic_id, key, ubuntu)
    vm_ip = arm.network.network_interfaces.get(RG, "vm1-nic").ip_configurations[0].private_ip_address

    spec = {
        "customize": [
            {"type": "Shell", "name": "mark", "inline": ["echo build-1 | sudo tee /etc/kaib-build"]}
        ]
    }
    code, logs = _run_builder(arm, aci_subnet, vm_ip, key, spec)
    assert code == 0, logs
    assert "build-1" in logs
    assert not Path("/etc/kaib-build").exists()

    # NSGs through the SDK: remove the allow rule and the ACI subnet cannot reach SSH any more.
    vnet = next(iter(arm.hooks.networks.values()))
    probe = vnet.attach("probe", "10.60.2.250", 24)  # stands in the ACI subnet, like the builder

    def ssh_open() -> bool:
        try:
            return read_banner(probe, vm_ip, 22, timeout=0.3).startswith(b"SSH-")
        except OSError:
            return False

    assert ssh_open()
    arm.network.security_rules.begin_delete(RG, "build-nsg", "AllowAciSsh").result()
    assert not ssh_open()
    code, logs = _run_builder(arm, aci_subnet, vm_ip, key, spec, build="b2", ssh_timeout="2s")
    assert code != 0
    assert "Timeout waiting for SSH" in logs, logs

    # A Windows VM exists in ARM only, and a builder's logs say so.
    win_nic = arm.network.network_interfaces.begin_create_or_update(
        RG, "win-nic", _nic_body(build_subnet)
    ).result()
    windows = {
        "publisher": "MicrosoftWindowsServer",
        "offer": "WindowsServer",
        "sku": "2022-datacenter-azure-edition",
        "version": "latest",
    }
    arm.compute.virtual_machines.begin_create_or_update(
        RG,
        "win",
        {
            "location": LOCATION,
            "properties": {
                "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
                "storageProfile": {"imageReference": windows, "osDisk": {"createOption": "FromImage"}},
                "osProfile": {"computerName": "win", "adminUsername": ADMIN, "adminPassword": "P@ss-1234!",
                              "windowsConfiguration": {}},
                "networkProfile": {"networkInterfaces": [{"id": win_nic.id}]},
            },
        },
    ).result()  # fmt: skip
    assert all(e.vm.name != "win" for e in arm.hooks.vms.values())
    code, logs = _run_builder(arm, aci_subnet, vm_ip, key, spec, build="b4", ssh_timeout="1s")
    assert "VM win is Windows: it exists in ARM only" in logs

    # Containers of other images run nothing, and say so.
    code, logs = _run_builder(
        arm, aci_subnet, vm_ip, key, spec, build="b3", image="mcr.microsoft.com/hello:1"
    )
    assert code == 0 and "runs nothing" in logs
    arm.network.security_rules.begin_create_or_update(
        RG, "build-nsg", "AllowAciSsh", _rule("AllowAciSsh", 100, "Allow", "10.60.2.0/24", "22")
    ).result()
    assert ssh_open()

    # Capture to a managed image; a second VM from it sees the first build's file.
    arm.compute.virtual_machines.begin_deallocate(RG, "vm1").result()
    arm.compute.virtual_machines.generalize(RG, "vm1")
    image = arm.compute.images.begin_create_or_update(
        RG,
        "image-1",
        Image(
            location=LOCATION,
            source_virtual_machine=SubResource(id=arm.compute.virtual_machines.get(RG, "vm1").id),
        ),
    ).result()
    nic2 = arm.network.network_interfaces.begin_create_or_update(
        RG,
        "vm2-nic",
        _nic_body(build_subnet),
    ).result()
    _vm(arm, "vm2", nic2.id, key, {"id": image.id})
    vm2_ip = nic2.ip_configurations[0].private_ip_address
    result = sandbox_runtime.ssh(probe, vm2_ip, key, "cat /etc/kaib-build; hostname")
    assert result.stdout.split() == ["build-1", "vm2"], result.stderr

    arm.compute.virtual_machines.begin_delete(RG, "vm2").result()
    assert not any(e.vm.name == "vm2" for e in arm.hooks.vms.values())


def _put(arm: Arm, resources: ResourceManagementClient, spec: ResourceSpec) -> None:
    """PUT one of the planner's specs by id, as generic ARM does, and wait for it."""
    version = API_VERSIONS[spec.type.split("/")[0]]
    resources.resources.begin_create_or_update_by_id(spec.id, dict(spec.body), api_version=version).result()


def test_subnet_only_topology_from_the_operators_plan(arm: Arm, sandbox_runtime: RuntimeKit) -> None:
    """The operator's own resource bodies (kaib.azure.planner) for the subnetId-only topology: SSH
    from the temporary VNet's ACI subnet reaches the build VM in the user's VNet only through the
    private endpoint (60001), the private link service, the load balancer and the proxy VM."""
    key = sandbox_runtime.ssh_key()
    resources = ResourceManagementClient(DefaultAzureCredential(), **arm.client_args)
    user_vnet = arm.network.virtual_networks.begin_create_or_update(
        RG,
        "corp",
        {
            "location": LOCATION,
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.80.0.0/16"]},
                "subnets": [
                    {
                        "name": "build",
                        "properties": {
                            "addressPrefix": "10.80.1.0/24",
                            "privateLinkServiceNetworkPolicies": "Disabled",
                        },
                    }
                ],
            },
        },
    ).result()
    user_subnet = user_vnet.subnets[0].id
    staging = "IT_ns_tmpl_hooks"
    resources.resource_groups.create_or_update(staging, {"location": LOCATION})
    bid = build_id("uid-hooks")
    ctx = BuildContext(
        arm.sandbox.subscription_id, LOCATION, staging, BuildNames(bid), Owner("ns", "tmpl", "b", bid)
    )
    image = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
    template = {
        "source": {"type": "PlatformImage", **image},
        "customize": [{"type": "Shell", "inline": ["true"]}],
        "vmProfile": {"vmSize": "Standard_D2s_v3", "vnetConfig": {"subnetId": user_subnet}},
    }
    the_plan = plan(template, PlanFacts(ctx, Access("Linux", ADMIN, key.public), image))
    assert the_plan.topology == "SubnetOnly" and the_plan.communicator_port == 60001
    for step in ("network", "buildvm"):
        for wave in the_plan.step(step).waves:
            for spec in wave:
                _put(arm, resources, spec)

    pe = arm.network.private_endpoints.get(staging, ctx.names.private_endpoint)
    pe_ip = (
        arm.network.network_interfaces.get(staging, pe.network_interfaces[0].id.rsplit("/", 1)[-1])
        .ip_configurations[0]
        .private_ip_address
    )
    build_ip = (
        arm.network.network_interfaces.get(staging, ctx.names.build_nic)
        .ip_configurations[0]
        .private_ip_address
    )
    proxy_ip = (
        arm.network.network_interfaces.get(staging, ctx.names.proxy_nic)
        .ip_configurations[0]
        .private_ip_address
    )
    temporary = arm.hooks.networks[ctx.id(t.VNET, ctx.names.vnet).lower()]
    probe = temporary.attach("probe", "10.0.1.250", 24)  # in the temporary VNet's ACI subnet

    result = sandbox_runtime.ssh(probe, pe_ip, key, "hostname; echo $SSH_CLIENT", port=60001)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == [ctx.names.build_vm, proxy_ip]
    with pytest.raises(OSError):
        read_banner(probe, build_ip, 22, timeout=0.3)  # no other way across

    # The builder agent, in a container group in the temporary VNet, customizes through the proxy.
    aci_subnet = network.subnet_id(ctx, ctx.names.aci_subnet)
    spec = {"customize": [{"type": "Shell", "inline": ["echo via-proxy | sudo tee /etc/kaib-proxy"]}]}
    code, logs = _run_builder(arm, aci_subnet, pe_ip, key, spec, build="p1", port=60001, group=staging)
    assert code == 0, logs
    assert sandbox_runtime.ssh(probe, pe_ip, key, "cat /etc/kaib-proxy", port=60001).stdout == "via-proxy\n"

    # Deleting the private endpoint (cleanup's first step) cuts the path.
    arm.network.private_endpoints.begin_delete(staging, ctx.names.private_endpoint).result()
    assert sandbox_runtime.ssh(probe, pe_ip, key, "true", port=60001, connect_timeout=1).returncode == 255
    assert not arm.hooks.links


def test_chained_builds_gallery_to_gallery(arm: Arm, sandbox_runtime: RuntimeKit) -> None:
    """Version 1.0.0 from VM 1; VM 2 from the gallery image (latest) adds to it; version 2.0.0 from
    VM 2; VM 3 from the gallery image sees both builds' changes, VM 4 from 1.0.0 only the first."""
    key = sandbox_runtime.ssh_key()
    build_subnet, _, nic_id = _network(arm)
    probe = next(iter(arm.hooks.networks.values())).attach("probe", "10.60.2.250", 24)
    resources = ResourceManagementClient(DefaultAzureCredential(), **arm.client_args)
    sub = f"/subscriptions/{arm.sandbox.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Compute"
    gallery_image = f"{sub}/galleries/gal/images/golden"
    resources.resources.begin_create_or_update_by_id(
        f"{sub}/galleries/gal", {"location": LOCATION}, api_version="2023-07-03"
    ).result()
    definition = {"osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
                  "identifier": {"publisher": "kaib", "offer": "golden", "sku": "1"}}  # fmt: skip
    resources.resources.begin_create_or_update_by_id(
        gallery_image, {"location": LOCATION, "properties": definition}, api_version="2023-07-03"
    ).result()

    def vm(name: str, image: dict[str, str], nic: str | None = None) -> str:
        if nic is None:
            nic = (
                arm.network.network_interfaces.begin_create_or_update(
                    RG, f"{name}-nic", _nic_body(build_subnet)
                )
                .result()
                .id
            )
        _vm(arm, name, nic, key, image)
        return str(
            arm.network.network_interfaces.get(RG, nic.rsplit("/", 1)[-1])
            .ip_configurations[0]
            .private_ip_address
        )

    def publish(name: str, version: str) -> None:
        arm.compute.virtual_machines.begin_deallocate(RG, name).result()
        arm.compute.virtual_machines.generalize(RG, name)
        source = {"id": arm.compute.virtual_machines.get(RG, name).id}
        resources.resources.begin_create_or_update_by_id(
            f"{gallery_image}/versions/{version}",
            {"location": LOCATION, "properties": {"storageProfile": {"source": source}}},
            api_version="2023-07-03",
        ).result()

    ubuntu = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
    ip1 = vm("vm1", ubuntu, nic_id)
    assert sandbox_runtime.ssh(probe, ip1, key, "echo one | sudo tee /etc/chain").returncode == 0
    publish("vm1", "1.0.0")
    ip2 = vm("vm2", {"id": gallery_image})
    assert sandbox_runtime.ssh(probe, ip2, key, "echo two | sudo tee -a /etc/chain").returncode == 0
    publish("vm2", "2.0.0")

    ip3 = vm("vm3", {"id": gallery_image})
    assert sandbox_runtime.ssh(probe, ip3, key, "cat /etc/chain").stdout.split() == ["one", "two"]
    ip4 = vm("vm4", {"id": f"{gallery_image}/versions/1.0.0"})
    assert sandbox_runtime.ssh(probe, ip4, key, "cat /etc/chain").stdout.split() == ["one"]
    assert not Path("/etc/chain").exists()
