"""The pure build planner: which resources a build creates, in which order, and how they go away.

`plan(spec, facts)` returns the create steps of DESIGN.md (network, build VM, builder), each a list
of waves (the specs of one wave do not depend on each other and are reconciled together), and the
delete waves of cleanup. Deletion follows ARM's dependencies: the container group first (it holds
the ACI subnet), then private endpoint -> private link service -> VMs -> NICs -> load balancer (its
backend pool is referenced by the proxy NIC) and disks -> VNet -> NSGs (an NSG attached to a
subnet cannot be deleted). The staging group and its storage account are the template's and stay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kaib.azure import compute, containerinstance, network
from kaib.azure import spec as t
from kaib.azure.compute import Access
from kaib.azure.containerinstance import EnvVar
from kaib.azure.context import BuildContext
from kaib.azure.spec import ResourceSpec

Topology = Literal["NoVNet", "SubnetOnly", "SubnetAndACI"]
Wave = tuple[ResourceSpec, ...]


def topology(spec: Mapping[str, Any]) -> Topology:
    vnet = ((spec.get("vmProfile") or {}).get("vnetConfig")) or {}
    if not vnet.get("subnetId"):
        return "NoVNet"
    if vnet.get("containerInstanceSubnetId"):
        return "SubnetAndACI"
    return "SubnetOnly"


def os_type(spec: Mapping[str, Any]) -> str:
    """Windows when any step is Windows-only; AIB infers the same from the customizers."""
    windows = {"PowerShell", "WindowsRestart", "WindowsUpdate"}
    steps = list(spec.get("customize") or []) + list(
        ((spec.get("validate") or {}).get("inVMValidations")) or []
    )
    return "Windows" if any(s.get("type") in windows for s in steps) else "Linux"


@dataclass(frozen=True)
class PlanFacts:
    """What the planner needs beyond the spec; filled in by the controller as the build goes."""

    ctx: BuildContext
    access: Access
    image: Mapping[str, Any]  # the resolved imageReference
    builder_image: str = "kaib-builder"
    builder_env: tuple[EnvVar, ...] = ()
    builder_command: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    name: str  # network | buildvm | builder
    condition: str  # the status condition it drives
    waves: tuple[Wave, ...]

    @property
    def specs(self) -> tuple[ResourceSpec, ...]:
        return tuple(s for wave in self.waves for s in wave)


@dataclass(frozen=True)
class Plan:
    topology: Topology
    steps: tuple[Step, ...]
    delete_waves: tuple[Wave, ...]
    communicator_port: int  # where the builder connects: 22/5986 on the VM, or the proxy port
    via_proxy: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def created(self) -> tuple[ResourceSpec, ...]:
        return tuple(s for step in self.steps for s in step.specs)


def plan(spec: Mapping[str, Any], facts: PlanFacts) -> Plan:
    ctx = facts.ctx
    names = ctx.names
    kind = topology(spec)
    windows = facts.access.os_type == "Windows"
    vm_port = network.WINRM_PORT if windows else network.SSH_PORT
    proxy_port = network.PROXY_PORT_WINDOWS if windows else network.PROXY_PORT_LINUX
    vnet_config = (spec.get("vmProfile") or {}).get("vnetConfig") or {}
    user_subnet = str(vnet_config.get("subnetId") or "")

    network_waves: list[Wave] = []
    if kind == "NoVNet":
        build_subnet = network.subnet_id(ctx, names.build_subnet)
        aci_subnet = network.subnet_id(ctx, names.aci_subnet)
        network_waves = [
            (network.nsg_aci(ctx, network.BUILD_PREFIX, [vm_port]), network.nsg_build(ctx)),
            (network.vnet_no_vnet(ctx),),
        ]
    elif kind == "SubnetOnly":
        build_subnet = user_subnet
        aci_subnet = network.subnet_id(ctx, names.aci_subnet)
        proxy_vm = _proxy_vm(spec, facts, user_subnet)
        network_waves = [
            (
                network.nsg_aci(ctx, network.PE_PREFIX, [proxy_port]),
                network.nsg_pe(ctx),
                network.load_balancer(ctx, user_subnet, proxy_port),
            ),
            (
                network.vnet_subnet_only(ctx),
                network.proxy_nic(ctx, user_subnet),
                network.private_link_service(ctx, user_subnet),
            ),
            (proxy_vm, network.private_endpoint(ctx)),
        ]
    else:
        build_subnet = user_subnet
        aci_subnet = str(vnet_config["containerInstanceSubnetId"])

    vm_profile = spec.get("vmProfile") or {}
    build_nic = network.nic(ctx, names.build_nic, build_subnet, "buildvm")
    source = spec.get("source") or {}
    build_vm = compute.virtual_machine(
        ctx,
        names.build_vm,
        names.build_os_disk,
        build_nic.id,
        facts.image,
        facts.access,
        size=str(vm_profile.get("vmSize") or compute.DEFAULT_VM_SIZE),
        step="buildvm",
        os_disk_size_gb=int(vm_profile.get("osDiskSizeGB") or 0),
        identities=tuple(vm_profile.get("userAssignedIdentities") or ()),
        plan=source.get("planInfo") if source.get("type") == "PlatformImage" else None,
    )
    builder = containerinstance.builder_group(
        ctx,
        aci_subnet,
        facts.builder_image,
        facts.builder_env,
        identity=template_identity(spec),
        command=facts.builder_command,
    )
    steps = (
        Step("network", "NetworkReady", tuple(network_waves)),
        Step("buildvm", "BuildVMReady", ((build_nic,), (build_vm,))),
        Step("builder", "BuilderReady", ((builder,),)),
    )
    return Plan(
        topology=kind,
        steps=steps,
        delete_waves=delete_waves(kind, ctx),
        communicator_port=proxy_port if kind == "SubnetOnly" else vm_port,
        via_proxy=kind == "SubnetOnly",
    )


def template_identity(spec: Mapping[str, Any]) -> str | None:
    identity = spec.get("identity") or {}
    if identity.get("type") != "UserAssigned":
        return None
    ids = list((identity.get("userAssignedIdentities") or {}).keys())
    return ids[0] if ids else None


def _proxy_vm(spec: Mapping[str, Any], facts: PlanFacts, user_subnet: str) -> ResourceSpec:
    ctx = facts.ctx
    size = ((spec.get("vmProfile") or {}).get("vnetConfig") or {}).get(
        "proxyVmSize"
    ) or compute.DEFAULT_PROXY_VM_SIZE
    # The proxy runs kaib's forwarder on a Linux platform image whatever the build's OS.
    access = Access("Linux", facts.access.admin_user, facts.access.ssh_public_key)
    proxy_image = {
        "publisher": "Canonical",
        "offer": "ubuntu-24_04-lts",
        "sku": "server",
        "version": "latest",
    }
    return compute.virtual_machine(
        ctx,
        ctx.names.proxy_vm,
        ctx.names.proxy_os_disk,
        ctx.id(t.NIC, ctx.names.proxy_nic),
        proxy_image,
        access,
        size=str(size),
        step="network",
    )


def delete_waves(kind: Topology, ctx: BuildContext) -> tuple[Wave, ...]:
    """Cleanup in dependency order; only the resources this topology creates."""
    n = ctx.names

    def s(type_: str, name: str, step: str) -> ResourceSpec:
        return ctx.spec(type_, name, {}, step=step)

    builder = s(t.CONTAINER_GROUP, n.builder, "builder")
    vm = s(t.VM, n.build_vm, "buildvm")
    nic = s(t.NIC, n.build_nic, "buildvm")
    disk = s(t.DISK, n.build_os_disk, "buildvm")
    if kind == "SubnetAndACI":
        return ((builder,), (vm,), (nic, disk))
    if kind == "NoVNet":
        return (
            (builder,),
            (vm,),
            (nic, disk),
            (s(t.VNET, n.vnet, "network"),),
            (s(t.NSG, n.nsg_aci, "network"), s(t.NSG, n.nsg_build, "network")),
        )
    return (
        (builder,),
        (s(t.PRIVATE_ENDPOINT, n.private_endpoint, "network"),),
        (s(t.PRIVATE_LINK_SERVICE, n.private_link_service, "network"),),
        (vm, s(t.VM, n.proxy_vm, "network")),
        (nic, s(t.NIC, n.proxy_nic, "network"), disk, s(t.DISK, n.proxy_os_disk, "network")),
        (s(t.LOAD_BALANCER, n.load_balancer, "network"),),
        (s(t.VNET, n.vnet, "network"),),
        (s(t.NSG, n.nsg_aci, "network"), s(t.NSG, n.nsg_pe, "network")),
    )


def deletion_order(waves: Sequence[Wave]) -> list[str]:
    """Resource ids in the order cleanup removes them (for tests and the docs)."""
    return [s.id for wave in waves for s in wave]
