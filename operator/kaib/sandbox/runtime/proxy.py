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

PROXY_PORTS: Mapping[int, int] = {60001: 22, 60000: 5986}


@dataclass
class PrivateLinkProxy:
    endpoint_network: Network
    endpoint_name: str  # the private endpoint's attachment in the temporary VNet
    proxy_network: Network
    proxy_name: str  # the proxy VM's attachment in the user's VNet
    target_ip: str  # the build VM's private address
    ports: Mapping[int, int] = field(default_factory=lambda: dict(PROXY_PORTS))
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint_ip(self) -> str:
        return self.endpoint_network.attachments[self.endpoint_name].ip

    @property
    def _label(self) -> str:
        return f"forwarder:private-link:{self.endpoint_network.attachments[self.endpoint_name].namespace}"

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
        endpoint_network.attach(*endpoint)
        proxy_network.attach(*proxy)
        link = cls(endpoint_network, endpoint[0], proxy_network, proxy[0], target_ip, dict(ports))
        link.start()
        return link

    def start(self) -> None:
        pe = self.endpoint_network.attachments[self.endpoint_name]
        px = self.proxy_network.attachments[self.proxy_name]
        routes = [
            Route(pe.namespace, pe.ip, listen, px.namespace, self.target_ip, target)
            for listen, target in self.ports.items()
        ]
        self.process = self.endpoint_network.runtime.forward(self._label.removeprefix("forwarder:"), routes)

    def delete(self) -> None:
        if self.process is not None:
            self.endpoint_network.runtime.reap(self.process, self._label)
            self.process = None
        self.endpoint_network.detach(self.endpoint_name)
        self.proxy_network.detach(self.proxy_name)
