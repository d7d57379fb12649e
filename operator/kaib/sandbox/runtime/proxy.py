"""The subnetId-only topology's path: private endpoint -> private link service -> internal load
balancer -> proxy VM -> build VM, as in AIB (proxy port 60001 to SSH 22, 60000 to WinRM 5986).

Modelled honestly but collapsed into one hop: a forwarder process listens on the private endpoint's
address in the temporary VNet and opens each upstream connection from the proxy VM's namespace in
the user's VNet. So the build VM sees connections coming from the proxy VM's address (NSGs of the
user's VNet apply to them), and the temporary VNet's NSGs apply on the way to the private endpoint.
The two VNets share no bridge and no route; address spaces may even overlap, as with Private Link.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from kaib.sandbox.runtime.forwarder import Route
from kaib.sandbox.runtime.network import Network
from kaib.sandbox.runtime.runtime import Runtime

PROXY_PORTS: Mapping[int, int] = {60001: 22, 60000: 5986}


@dataclass
class PrivateLinkProxy:
    """Forwarding from (endpoint namespace, endpoint ip, port) to (target ip, ports[port]), connecting
    from the proxy's namespace. `create` also makes both attachments (and `delete` removes them)."""

    runtime: Runtime
    endpoint_namespace: str
    endpoint_ip: str
    proxy_namespace: str
    target_ip: str
    ports: Mapping[int, int] = field(default_factory=lambda: dict(PROXY_PORTS))
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    attachments: list[tuple[Network, str]] = field(default_factory=list, repr=False)

    @property
    def _label(self) -> str:
        return f"private-link:{self.endpoint_namespace}"

    @classmethod
    def create(
        cls,
        endpoint_network: Network,
        endpoint: tuple[str, str, int],
        proxy_network: Network,
        proxy: tuple[str, str, int],
        target_ip: str,
        ports: Mapping[int, int] = PROXY_PORTS,
    ) -> PrivateLinkProxy:
        """Attach the private endpoint (name, ip, prefixlen) and the proxy VM (name, ip, prefixlen),
        and start forwarding each endpoint port to the target's port."""
        endpoint_ns = endpoint_network.attach(*endpoint)
        proxy_ns = proxy_network.attach(*proxy)
        link = cls(endpoint_network.runtime, endpoint_ns, endpoint[1], proxy_ns, target_ip, dict(ports))
        link.attachments = [(endpoint_network, endpoint[0]), (proxy_network, proxy[0])]
        link.start()
        return link

    def start(self) -> None:
        routes = [
            Route(
                self.endpoint_namespace,
                self.endpoint_ip,
                listen,
                self.proxy_namespace,
                self.target_ip,
                target,
            )
            for listen, target in self.ports.items()
        ]
        self.process = self.runtime.forward(self._label, routes)

    def stop(self) -> None:
        if self.process is not None:
            self.runtime.reap(self.process, f"forwarder:{self._label}")
            self.process = None

    def delete(self) -> None:
        self.stop()
        for network, name in self.attachments:
            network.detach(name)
        self.attachments = []
