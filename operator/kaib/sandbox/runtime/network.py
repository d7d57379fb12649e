"""A virtual network: a namespace holding a Linux bridge, with endpoints joined by veth pairs."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from kaib.sandbox.runtime import commands, names
from kaib.sandbox.runtime.forwarder import Route
from kaib.sandbox.runtime.nsg import SecurityGroup, render
from kaib.sandbox.runtime.registry import Record
from kaib.sandbox.runtime.runtime import Runtime

BRIDGE = "br0"
ENDPOINT_IF = "eth0"


@dataclass
class Attachment:
    name: str
    namespace: str
    ip: str
    prefixlen: int
    bridge_port: str


@dataclass
class Network:
    """One VNet. Subnets are just prefixes: an endpoint gets its subnet address, plus on-link routes
    for the VNet's address spaces (Azure routes a whole VNet without gateways), plus a route to the
    runtime's service address. There is no default route: nothing leaves the sandbox.
    """

    runtime: Runtime
    name: str
    address_space: list[str] = field(default_factory=list)
    attachments: dict[str, Attachment] = field(default_factory=dict)
    _forwarders: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.namespace = names.namespace(self.runtime.id, "n", self.name)

    @classmethod
    def create(cls, runtime: Runtime, name: str, address_space: list[str] | None = None) -> Network:
        net = cls(runtime, name, list(address_space or []))
        ns = net.namespace
        runtime.registry.add(Record("netns", ns))
        commands.ip("netns", "add", ns)
        commands.ip("link", "set", "lo", "up", namespace=ns)
        commands.ip("link", "add", BRIDGE, "type", "bridge", namespace=ns)
        commands.ip("addr", "add", f"{runtime.service_ip}/32", "dev", BRIDGE, namespace=ns)
        commands.ip("link", "set", BRIDGE, "up", namespace=ns)
        # Bridged IPv4 goes through the inet hooks (and conntrack) of this namespace: NSG rules live there.
        commands.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"])
        return net

    def attach(self, name: str, ip: str, prefixlen: int) -> str:
        """Create a namespace joined to the bridge with ip/prefixlen on its eth0; return its name."""
        if name in self.attachments:
            raise ValueError(f"{name!r} is already attached to network {self.name!r}")
        ns = names.namespace(self.runtime.id, "e", f"{self.name}/{name}")
        port = names.bridge_port(name)
        self.runtime.registry.add(Record("netns", ns))
        commands.ip("netns", "add", ns)
        self.attachments[name] = Attachment(name, ns, ip, prefixlen, port)
        commands.ip("link", "add", port, "type", "veth", "peer", "name", ENDPOINT_IF, "netns", ns,
                    namespace=self.namespace)  # fmt: skip
        commands.ip("link", "set", port, "master", BRIDGE, "up", namespace=self.namespace)
        # The bridge namespace answers for the service address, so it needs a way back.
        commands.ip("route", "replace", f"{ip}/32", "dev", BRIDGE, "src", self.runtime.service_ip,
                    namespace=self.namespace)  # fmt: skip
        commands.ip("link", "set", "lo", "up", namespace=ns)
        commands.ip("addr", "add", f"{ip}/{prefixlen}", "dev", ENDPOINT_IF, namespace=ns)
        commands.ip("link", "set", ENDPOINT_IF, "up", namespace=ns)
        connected = ipaddress.ip_network(f"{ip}/{prefixlen}", strict=False)
        for space in self.address_space:
            if ipaddress.ip_network(space) != connected:
                commands.ip("route", "add", space, "dev", ENDPOINT_IF, namespace=ns)
        commands.ip("route", "add", f"{self.runtime.service_ip}/32", "dev", ENDPOINT_IF, namespace=ns)
        return ns

    def detach(self, name: str) -> None:
        att = self.attachments.pop(name)
        from kaib.sandbox.runtime.sweep import remove_namespace

        remove_namespace(att.namespace)
        commands.ip("route", "del", f"{att.ip}/32", namespace=self.namespace, check=False)
        self.runtime.registry.remove("netns", att.namespace)

    def apply_security_groups(self, bindings: Mapping[str, SecurityGroup]) -> str:
        """Enforce NSGs: `bindings` maps a subnet prefix (or a NIC's ip/32) to its NSG; replaces the
        previous set atomically ({} lifts all filtering). Returns the nft script (see nsg.py)."""
        vnet = self.address_space or [f"{a.ip}/{a.prefixlen}" for a in self.attachments.values()]
        script = render(bindings, vnet)
        commands.nft_apply(self.namespace, script)
        return script

    def expose(self, host_port: int, port: int | None = None, host_ip: str = "127.0.0.1") -> tuple[str, int]:
        """Make a host service (e.g. Azurite on 127.0.0.1:host_port) reachable from this network at
        (service address, port). Returns that address and port."""
        port = port or host_port
        route = Route(self.namespace, self.runtime.service_ip, port, None, host_ip, host_port)
        self._forwarders[port] = self.runtime.forward(f"expose:{self.namespace}:{port}", [route])
        return self.runtime.service_ip, port

    @property
    def exposed_ports(self) -> set[int]:
        return set(self._forwarders)

    def delete(self) -> None:
        from kaib.sandbox.runtime.sweep import remove_namespace

        for port, proc in list(self._forwarders.items()):
            self.runtime.reap(proc, f"forwarder:expose:{self.namespace}:{port}")
        self._forwarders.clear()
        for name in list(self.attachments):
            self.detach(name)
        remove_namespace(self.namespace)
        self.runtime.registry.remove("netns", self.namespace)
