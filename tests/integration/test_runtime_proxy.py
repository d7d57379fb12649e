"""The subnetId-only topology: SSH from the container group through the private endpoint in the
temporary VNet, the proxy VM in the user's VNet, to the build VM (proxy port 60001 -> 22)."""

from __future__ import annotations

import pytest

from kaib.sandbox.runtime import PrivateLinkProxy, SecurityGroup, SecurityRule
from kaib.sandbox.runtime.netns import read_banner
from tests.fixtures.runtime import RuntimeKit


def test_ssh_through_private_endpoint_and_proxy_vm(sandbox_runtime: RuntimeKit) -> None:
    kit = sandbox_runtime
    temporary = kit.network("temporary", ["10.70.0.0/16"])
    users = kit.network("users", ["10.80.0.0/16"])
    key = kit.ssh_key()
    vm = kit.vm(users, "build-vm", "10.80.1.4", key)
    aci = kit.client(temporary, "aci", "10.70.1.4")
    link = PrivateLinkProxy.create(
        temporary, ("private-endpoint", "10.70.2.5", 24), users, ("proxy-vm", "10.80.1.5", 24), vm.ip
    )

    result = kit.ssh(aci, link.endpoint_ip, key, "hostname; echo $SSH_CLIENT", port=60001)
    assert result.returncode == 0, result.stderr
    hostname, client_ip = result.stdout.split()[:2]
    assert (hostname, client_ip) == ("build-vm", "10.80.1.5")  # the VM sees the proxy VM, as in Azure

    # The VNets are not connected otherwise: the build VM is unreachable directly.
    with pytest.raises(OSError):
        read_banner(aci, vm.ip, 22, timeout=0.3)

    # The user's NSG applies to the proxy VM's connections: deny it, and the path is cut.
    deny_proxy = SecurityRule("DenyProxy", 100, "Inbound", "Deny", "Tcp", ("10.80.1.5",), ("*",), ("22",))
    users.apply_security_groups({"10.80.1.0/24": SecurityGroup("user-subnet", (deny_proxy,))})
    assert kit.ssh(aci, link.endpoint_ip, key, "true", port=60001, connect_timeout=2).returncode == 255

    users.apply_security_groups({})
    assert kit.ssh(aci, link.endpoint_ip, key, "true", port=60001).returncode == 0
    link.delete()
    assert "private-endpoint" not in temporary.attachments
