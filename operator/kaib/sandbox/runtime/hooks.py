"""`RuntimeHooks`: the ARM emulator's hooks (kaib.sandbox.hooks.SandboxHooks) made real.

VNets become Networks, NSGs (on subnets and NICs) become nftables rules, Linux VMs become
VirtualMachines attached at their NIC's address, managed images and gallery image versions keep the
source VM's disk as layers (so VMs made from them, and chained builds, see earlier changes), an
exported OS disk (grant access) serves a tar of the deallocated VM's disk changes, and a
container group whose image is the kaib builder image runs the builder agent from this installation
in a namespace attached to its subnet. Its environment's http(s)://127.0.0.1:PORT URLs (Azurite)
are rewritten to the network's service address, where that port is exposed.

The builder image's own command is not run: this installation's `python -m kaib.builder.agent`
stands for it, with the container's environment (secure values included) plus PATH/HOME/PYTHONPATH.

Not real, and said so: Windows VMs exist in ARM only (no runtime; a warning is logged and a builder
container in the same resource group logs "VM <name> is Windows: it exists in ARM only"); containers
with other images run nothing, log that, and exit 0 after the modelled run time. VMs restored from a
saved sandbox state exist in ARM only until started again, from empty disks: neither processes
nor VM disks and captured layers survive a sandbox restart.

Private endpoints: a private endpoint whose private link service fronts a load balancer whose
backend pool holds a running proxy VM's NIC gets a PrivateLinkProxy: its address in the temporary
VNet forwards each rule's frontend port, from the proxy VM's namespace, to the build VM at the
proxy's target port (60001 -> 22, 60000 -> 5986). The build VM is the other running VM of the proxy
VM's resource group in the same VNet (a staging group holds one build), as AIB's proxy is pointed
at its build VM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kaib.sandbox.hooks import ContainerRun, ContainerSpec, ResourceView
from kaib.sandbox.runtime import arm
from kaib.sandbox.runtime.network import Network
from kaib.sandbox.runtime.nsg import SecurityGroup
from kaib.sandbox.runtime.proxy import PROXY_PORTS, PrivateLinkProxy
from kaib.sandbox.runtime.runtime import Runtime
from kaib.sandbox.runtime.support import check_support
from kaib.sandbox.runtime.vm import VirtualMachine

log = logging.getLogger(__name__)
BUILDER_IMAGES = ("kaib-builder",)
T = TypeVar("T")


@dataclass
class _Vm:
    vm: VirtualMachine
    network: Network
    attachment: str


@dataclass
class RuntimeHooks:
    """Pass as `Options(hooks=RuntimeHooks())`. Raises RuntimeUnavailable when the machine can't.

    `close()` (sandbox stop or reset) sweeps everything; the next resource starts a fresh runtime.
    """

    state_dir: Path | None = None
    builder_images: tuple[str, ...] = BUILDER_IMAGES
    _runtime: Runtime | None = field(default=None, init=False)
    networks: dict[str, Network] = field(default_factory=dict, init=False)  # VNet id (lower) ->
    vms: dict[str, _Vm] = field(default_factory=dict, init=False)  # VM id (lower) ->
    layers: dict[str, list[Path]] = field(default_factory=dict, init=False)  # image id (lower) ->
    groups: dict[str, tuple[Network, str]] = field(default_factory=dict, init=False)  # group id ->
    endpoints: dict[str, str] = field(default_factory=dict, init=False)  # private endpoint id (lower) -> id
    links: dict[str, tuple[tuple[Any, ...], PrivateLinkProxy]] = field(default_factory=dict, init=False)
    windows: dict[str, str] = field(default_factory=dict, init=False)  # VM id (lower) -> name: ARM only
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        check_support()  # refuse to pretend, at sandbox start rather than at the first VM

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime(self.state_dir)
        return self._runtime

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    # Networks ------------------------------------------------------------------------------------

    def _network(self, vnet_id: str, lookup: Callable[[str], dict[str, Any] | None]) -> Network:
        """The Network of a VNet, made on first use (also for a VNet restored from saved state)."""
        key = vnet_id.lower()
        if key not in self.networks:
            vnet = lookup(vnet_id) or {}
            name = f"{vnet.get('name') or vnet_id.rsplit('/', 1)[-1]} {key}"
            self.networks[key] = Network.create(self.runtime, name, arm.address_space(vnet))
        return self.networks[key]

    def _apply_security(self, lookup: Callable[[str], dict[str, Any] | None]) -> None:
        """Recompute every network's NSG bindings from the current ARM state (subnets and NICs)."""
        for vnet_id, network in self.networks.items():
            vnet = lookup(vnet_id)
            if vnet is None:
                continue
            network.address_space = arm.address_space(vnet)
            bindings: dict[str, SecurityGroup] = {}
            for item in arm.props(vnet).get("subnets") or []:
                subnet = lookup(str(item.get("id", ""))) or item
                nsg_id = (arm.props(subnet).get("networkSecurityGroup") or {}).get("id")
                nsg = lookup(nsg_id) if nsg_id else None
                if nsg is not None:
                    for prefix in arm.subnet_prefixes(subnet):
                        bindings[prefix] = arm.security_group(nsg)
            for entry in self.vms.values():
                if entry.network is network:
                    self._bind_nic(entry.attachment, entry.vm.ip, lookup, bindings)
            network.apply_security_groups(bindings)

    @staticmethod
    def _bind_nic(
        nic_id: str,
        ip: str,
        lookup: Callable[[str], dict[str, Any] | None],
        bindings: dict[str, SecurityGroup],
    ) -> None:
        nsg_id = (arm.props(lookup(nic_id)).get("networkSecurityGroup") or {}).get("id")
        nsg = lookup(nsg_id) if nsg_id else None
        if nsg is not None:
            bindings[f"{ip}/32"] = arm.security_group(nsg)

    async def network_changed(self, view: ResourceView) -> None:
        async with self._lock:
            if view.type.lower() == arm.VNET:
                await self._io(self._network, view.id, view.lookup)
            if view.type.lower() == arm.PRIVATE_ENDPOINT:
                self.endpoints[view.id.lower()] = view.id
            await self._io(self._apply_security, view.lookup)
            await self._io(self._wire_private_links, view.lookup)

    async def network_deleted(self, view: ResourceView) -> None:
        async with self._lock:
            if view.type.lower() == arm.PRIVATE_ENDPOINT:
                self.endpoints.pop(view.id.lower(), None)
            network = self.networks.pop(view.id.lower(), None) if view.type.lower() == arm.VNET else None
            if network is not None:
                await self._io(self._unlink_network, network)
                await self._io(network.delete)
            else:
                await self._io(self._apply_security, view.lookup)
            await self._io(self._wire_private_links, view.lookup)

    # Private endpoints -> proxy VM -> build VM ------------------------------------------------------

    def _link_plan(
        self, pe_id: str, lookup: Callable[[str], dict[str, Any] | None]
    ) -> tuple[Any, ...] | None:
        """What a private endpoint should forward, from the ARM bodies; None while a piece is missing."""
        pe = lookup(pe_id)
        if pe is None:
            return None
        nics = arm.props(pe).get("networkInterfaces") or []
        pe_ip, pe_subnet = arm.nic_address(lookup(str(nics[0].get("id", ""))) or {}) if nics else ("", "")
        if not pe_ip or not pe_subnet:
            return None
        rules: list[tuple[int, int, str]] = []
        for pls_id in arm.private_link_service_ids(pe):
            for lb_id in arm.load_balancer_ids(lookup(pls_id) or {}):
                rules += arm.balancing_rules(lookup(lb_id) or {})
        for vm_key, proxy in self.vms.items():
            if not proxy.vm.running:
                continue
            pools = arm.nic_backend_pools(lookup(proxy.attachment) or {})
            ports = {
                front: PROXY_PORTS.get(back, back) for front, back, pool in rules if pool.lower() in pools
            }
            if not ports:
                continue
            group = arm.resource_group_prefix(vm_key)
            targets = [
                e.vm.ip
                for k, e in self.vms.items()
                if k != vm_key
                and e.network is proxy.network
                and e.vm.running
                and arm.resource_group_prefix(k) == group
            ]
            if len(targets) == 1:
                subnet = lookup(pe_subnet) or {}
                prefixlen = arm.prefixlen_for(pe_ip, arm.subnet_prefixes(subnet))
                return (
                    arm.vnet_id_of(pe_subnet),
                    pe_ip,
                    prefixlen,
                    vm_key,
                    targets[0],
                    tuple(sorted(ports.items())),
                )
        return None

    def _wire_private_links(self, lookup: Callable[[str], dict[str, Any] | None]) -> None:
        """Start, restart or stop each private endpoint's forwarding to match the ARM state."""
        for key in list(self.links):
            if key not in self.endpoints:
                self._unlink(key)
        for key, pe_id in self.endpoints.items():
            plan = self._link_plan(pe_id, lookup)
            current = self.links.get(key)
            if current is not None and current[0] == plan:
                continue
            if current is not None:
                self._unlink(key)
            if plan is None:
                continue
            vnet_id, pe_ip, prefixlen, proxy_key, target_ip, ports = plan
            network = self._network(vnet_id, lookup)
            namespace = network.attach(pe_id, pe_ip, prefixlen)
            proxy = self.vms[proxy_key]
            link = PrivateLinkProxy(
                self.runtime, namespace, pe_ip, proxy.vm.namespace, target_ip, dict(ports)
            )
            link.attachments = [(network, pe_id)]
            link.start()
            self.links[key] = (plan, link)

    def _unlink(self, key: str) -> None:
        found = self.links.pop(key, None)
        if found is not None:
            found[1].delete()

    def _unlink_network(self, network: Network) -> None:
        for key, (_, link) in list(self.links.items()):
            if any(n is network for n, _ in link.attachments) or link.proxy_namespace in {
                a.namespace for a in network.attachments.values()
            }:
                self._unlink(key)

    # VMs -----------------------------------------------------------------------------------------

    def _create_vm(self, view: ResourceView) -> _Vm | None:
        body = view.body
        if arm.is_windows(body):
            log.warning("sandbox: VM %s is Windows: it exists in ARM only, nothing runs it", view.name)
            self.windows[view.id.lower()] = view.name
            return None
        nic_ids = arm.vm_nic_ids(body)
        if not nic_ids:
            log.warning("sandbox: VM %s has no NIC: nothing to attach it to", view.name)
            return None
        ip, subnet_id = arm.nic_address(view.lookup(nic_ids[0]) or {})
        subnet = view.lookup(subnet_id) or {}
        network = self._network(arm.vnet_id_of(subnet_id), view.lookup)
        namespace = network.attach(nic_ids[0], ip, arm.prefixlen_for(ip, arm.subnet_prefixes(subnet)))
        admin, key = arm.linux_access(body)
        layers = self._image_layers(arm.source_image_id(body))
        vm = VirtualMachine(self.runtime, view.name, namespace, ip, admin, key, layers)
        entry = _Vm(vm, network, nic_ids[0])
        self.vms[view.id.lower()] = entry
        self._apply_security(view.lookup)
        return entry

    def _image_layers(self, image_id: str) -> list[Path]:
        """Layers of a managed image or gallery image version; a gallery image means its latest version."""
        if not image_id:
            return []
        key = image_id.lower()
        if key in self.layers:
            return self.layers[key]
        versions = [k for k in self.layers if k.startswith(key + "/versions/")]
        if versions:
            latest = max(
                versions, key=lambda k: tuple(int(x) for x in k.rsplit("/", 1)[1].split(".") if x.isdigit())
            )
            return self.layers[latest]
        log.warning(
            "sandbox: image %s has no captured layers here; the VM starts from the platform image", image_id
        )
        return []

    async def vm_started(self, view: ResourceView) -> None:
        async with self._lock:
            entry = self.vms.get(view.id.lower()) or await self._io(self._create_vm, view)
        if entry is not None:
            await self._io(entry.vm.start)
            async with self._lock:
                await self._io(self._wire_private_links, view.lookup)

    async def vm_stopped(self, view: ResourceView, deallocated: bool) -> None:
        entry = self.vms.get(view.id.lower())
        if entry is not None:
            await self._io(entry.vm.stop)
            async with self._lock:
                await self._io(self._wire_private_links, view.lookup)

    async def vm_deleted(self, view: ResourceView) -> None:
        self.windows.pop(view.id.lower(), None)
        async with self._lock:
            entry = self.vms.pop(view.id.lower(), None)
            if entry is not None:
                await self._io(self._wire_private_links, view.lookup)
                await self._io(entry.vm.delete)
                await self._io(entry.network.detach, entry.attachment)

    async def vm_generalized(self, view: ResourceView) -> None:
        return None  # the disk is captured as it is; there is no waagent to deprovision

    # Images --------------------------------------------------------------------------------------

    def _capture(self, image: ResourceView, source: ResourceView | None) -> None:
        if source is None:
            return
        entry = self.vms.get(source.id.lower())
        if entry is not None:
            layer = entry.vm.capture(self.runtime.image_path(image.id))
            self.layers[image.id.lower()] = [*entry.vm.layers, layer]
        elif source.id.lower() in self.layers:
            self.layers[image.id.lower()] = self.layers[source.id.lower()]

    async def image_created(self, image: ResourceView, source: ResourceView | None) -> None:
        async with self._lock:
            await self._io(self._capture, image, source)

    def _disk_tar(self, vm_id: str) -> bytes | None:
        entry = self.vms.get(vm_id.lower())
        if entry is None or entry.vm.running:
            return None
        # The VM's disk changes (its upper layer, whiteouts and xattrs kept), as capture keeps them.
        proc = subprocess.run(
            ["tar", "--xattrs", "--numeric-owner", "-C", str(entry.vm.upper_dir), "-cf", "-", "."],
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            log.warning(
                "sandbox: cannot read the disk of %s: %s", vm_id, proc.stderr.decode(errors="replace")
            )
            return None
        return proc.stdout

    async def disk_contents(self, disk: ResourceView, vm: ResourceView | None) -> bytes | None:
        if vm is None:
            return None
        async with self._lock:
            return await self._io(self._disk_tar, vm.id)

    async def image_deleted(self, view: ResourceView) -> None:
        # Layers stay on disk while a later image may stack on them; close() removes them all.
        self.layers.pop(view.id.lower(), None)

    # Container groups ----------------------------------------------------------------------------

    def _is_builder(self, spec: ContainerSpec) -> bool:
        return arm.image_repository(spec.image) in self.builder_images

    def _attach_group(self, run: ContainerRun) -> tuple[Network, str]:
        key = run.group.id.lower()
        if key not in self.groups:
            if not run.subnet_ids or not run.private_ip:
                raise RuntimeError("the container group has no subnet or private IP: nothing to attach")
            subnet = run.group.lookup(run.subnet_ids[0]) or {}
            network = self._network(arm.vnet_id_of(run.subnet_ids[0]), run.group.lookup)
            prefixlen = arm.prefixlen_for(run.private_ip, arm.subnet_prefixes(subnet))
            network.attach(run.group.id, run.private_ip, prefixlen)
            self.groups[key] = (network, run.group.id)
        return self.groups[key]

    def _agent_env(self, spec: ContainerSpec, network: Network, workdir: Path) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "KAIB_WORKDIR": str(workdir / "work"),
        }
        exposed: set[int] = set()
        for name, value in spec.env.items():
            for port in arm.loopback_ports(value):
                if port not in exposed and port not in network.exposed_ports:
                    network.expose(port)
                exposed.add(port)
            env[name] = arm.to_service_address(value, self.runtime.service_ip)
        return env

    async def run_container_group(self, run: ContainerRun) -> None:
        await asyncio.gather(*(self._run_container(run, spec) for spec in run.containers))

    async def _run_container(self, run: ContainerRun, spec: ContainerSpec) -> None:
        if not self._is_builder(spec):
            run.container_started(spec.name)
            run.log(
                spec.name, f"sandbox: image {spec.image} is not the kaib builder image; it runs nothing\n"
            )
            await asyncio.sleep(run.run_seconds)
            run.finished(spec.name, 0)
            return
        async with self._lock:
            network, attachment = await self._io(self._attach_group, run)
            namespace = network.attachments[attachment].namespace
            workdir = self.runtime.state_dir / "containers" / f"{run.group.name}-{spec.name}"
            await self._io(lambda: (workdir / "work").mkdir(parents=True, exist_ok=True))
            env = await self._io(self._agent_env, spec, network, workdir)
        group = arm.resource_group_prefix(run.group.id)
        for vm_id, name in self.windows.items():
            if arm.resource_group_prefix(vm_id) == group:
                note = f"sandbox: VM {name} is Windows: it exists in ARM only; nothing answers on WinRM\n"
                run.log(spec.name, note)
        run.log(spec.name, f"sandbox: running the kaib builder agent at {run.private_ip} in {namespace}\n")
        # The image's own command is not run: this installation's agent stands for the image.
        argv = [sys.executable, "-m", "kaib.builder.agent"]
        proc = await self._io(
            lambda: self.runtime.run_in(
                namespace, argv, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(workdir)
            )
        )
        run.container_started(spec.name)
        try:
            assert proc.stdout is not None
            async for line in _lines(proc.stdout):
                run.log(spec.name, line)
            code = await self._io(proc.wait)
        finally:
            await self._io(self.runtime.reap, proc, f"run-in:{namespace}")
        run.finished(spec.name, code)

    async def container_group_deleted(self, view: ResourceView) -> None:
        async with self._lock:
            found = self.groups.pop(view.id.lower(), None)
            if found is not None:
                network, attachment = found
                if attachment in network.attachments:
                    await self._io(network.detach, attachment)

    async def close(self) -> None:
        async with self._lock:
            runtime, self._runtime = self._runtime, None
            for table in (self.networks, self.vms, self.layers, self.groups, self.endpoints, self.links):
                table.clear()
            if runtime is not None:
                await self._io(runtime.close)


async def _lines(stream: Any) -> AsyncIterator[str]:
    """Lines of a blocking pipe, read off the event loop."""
    while True:
        line: bytes = await asyncio.to_thread(stream.readline)
        if not line:
            return
        yield line.decode(errors="replace")
